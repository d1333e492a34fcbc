#!/usr/bin/env bash
# The OS refusing a thread (pthread_create's EAGAIN), end to end: 3,000 fibers each block
# their M in usleep() under a 1 GB address space, so thread stacks run out long before
# the thread cap (default 10,000); the scheduler's failure to start an M is Go's fatal
# "thread exhaustion" (runtime/threadlimit.h): the OS error on stderr and exit 2, never an
# uncaught std::system_error (abort, exit 134). A sanitizer build cannot start under
# `ulimit -v` (it reserves terabytes of shadow), so the check runs in the plain pass only.
set -u
bin="vm/cli/spindle"
limit=1000000  # KiB
probe=$( (ulimit -v $limit; exec "$bin" -e 'print 1;') 2>&1)
if [[ "$probe" == *Sanitizer* ]]; then
  echo "skip thread-exhaustion: a sanitizer build cannot start under ulimit -v"
  echo "0 passed, 0 failed"
  exit 0
fi
cat >"$TEST_TMPDIR/blockers.lox" <<'LOX'
var usleep = FFI.fn("usleep", "int", ["uint32"]);
var done = Channel(3000);
fun blocker() { usleep(3000000); done.send(1); }
for (var i = 0; i < 3000; i = i + 1) spawn blocker();
for (var i = 0; i < 3000; i = i + 1) done.recv();
print "all returned";
LOX
(ulimit -v $limit; ulimit -s 8192; exec "$bin" --procs 2 "$TEST_TMPDIR/blockers.lox") >"$TEST_TMPDIR/out" 2>"$TEST_TMPDIR/err"
rc=$?
err=$(cat "$TEST_TMPDIR/err")
if [[ $rc -eq 2 && "$err" == *"runtime: failed to create new OS thread"*"Resource temporarily unavailable"* &&
      "$err" == *"fatal error: thread exhaustion"* && "$err" != *system_error* && "$err" != *terminate* ]]; then
  echo "ok thread-exhaustion"
  echo "1 passed, 0 failed"
  exit 0
fi
echo "FAIL thread-exhaustion: exit $rc (want 2); stdout: $(head -c 200 "$TEST_TMPDIR/out"); stderr: ${err:0:400}"
echo "0 passed, 1 failed"
exit 1
