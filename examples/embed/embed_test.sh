#!/usr/bin/env bash
# Runs the embedding example and checks what it prints.
set -u
out=$(examples/embed/embed 2>&1); rc=$?
want=$'host: ada opened with funds\n75\nerror as a value: Undefined property \'withdraw\'.\n[line 1] in script\n45\nledger error: record() needs a number.\n[line 10] in script\nhost sees 2 entries'
# The plugin host (game.cc): compile errors and traces name the plugin's file; the sandbox,
# the step limit, the memory limit and the watchdog's interrupt each drop one plugin.
want+=$'\nloaded mover.lox
plugin broken.lox dropped: broken.lox: [line 1] Error at \';\': Expect expression.
loaded crash.lox
loaded runaway.lox
loaded hog.lox
loaded spinner.lox
plugin sneaky.lox dropped: Undefined variable \'readFile\'.
    [line 3] in script (sneaky.lox)
frame 1
plugin crash.lox dropped: Only instances have properties.
    [line 6] in helper() (crash.lox)
plugin runaway.lox dropped: Instruction limit exceeded.
    [line 2] in update() (runaway.lox)
plugin hog.lox dropped: Out of memory.
    [line 4] in update() (hog.lox)
  | spinning
plugin spinner.lox dropped: Interrupted.
    [line 2] in update() (spinner.lox)
frame 2
frame 3
mover.lox survives: sprite at (4.5, 0), live heap accounted'
if [[ $rc -ne 0 || "$out" != "$want" ]]; then
  echo "FAIL: exit $rc, output:"; echo "$out"; exit 1
fi
echo ok
