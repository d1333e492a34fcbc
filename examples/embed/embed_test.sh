#!/usr/bin/env bash
# Runs the embedding example and checks what it prints.
set -u
out=$(examples/embed/embed 2>&1); rc=$?
want=$'host: ada opened with funds\n75\nerror as a value: Undefined property \'withdraw\'.\n[line 1] in script\n45\nledger error: record() needs a number.\n[line 10] in script\nhost sees 2 entries'
if [[ $rc -ne 0 || "$out" != "$want" ]]; then
  echo "FAIL: exit $rc, output:"; echo "$out"; exit 1
fi
echo ok
