#!/usr/bin/env bash
# Runs every examples/NAME.lox that has an examples/NAME.out through the spindle binary:
# stdout must equal NAME.out, stderr be empty and the exit code 0.
set -u
bin="vm/cli/spindle"
fails=0
for out in examples/*.out; do
  lox="${out%.out}.lox"
  got=$("$bin" "$lox" 2>"$TEST_TMPDIR/err"); rc=$?
  if [[ $rc -ne 0 || -s "$TEST_TMPDIR/err" || "$got" != "$(cat "$out")" ]]; then
    echo "FAIL $lox: exit $rc; stderr: $(cat "$TEST_TMPDIR/err"); stdout: $got"
    fails=$((fails+1))
  else
    echo "ok $lox"
  fi
done
exit $((fails > 0))
