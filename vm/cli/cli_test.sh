#!/usr/bin/env bash
# End-to-end checks of the spindle binary's plumbing: flags, exit codes, messages.
set -u
bin="vm/cli/spindle"
fails=0
expect() {  # expect NAME WANT_RC GREP_PATTERN -- ARGS...
  local name=$1 want=$2 pattern=$3; shift 4
  local out rc
  out=$("$bin" "$@" 2>&1); rc=$?
  if [[ $rc -ne $want ]]; then echo "FAIL $name: exit $rc, want $want; output: $out"; fails=$((fails+1)); return; fi
  if ! grep -q -- "$pattern" <<<"$out"; then echo "FAIL $name: output lacks '$pattern': $out"; fails=$((fails+1)); return; fi
  echo "ok $name"
}
expect help 0 "usage: spindle" -- --help
expect version 0 "^spindle [0-9]" -- --version
expect unknown-flag 64 "unknown option '--bogus'" -- --bogus
expect e-missing-arg 64 "-e needs an argument" -- -e
expect run-missing-file 64 "'run' needs a FILE" -- run
expect missing-file 66 "cannot open 'no/such/file.lox'" -- no/such/file.lox
exit $((fails > 0))
