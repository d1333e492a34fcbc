#!/usr/bin/env bash
# Resource limits end to end: out of memory under `ulimit -v` (a catchable runtime error
# "Out of memory.", earlier output flushed, exit 70 uncaught) and the thread cap
# (--max-threads) with fibers blocked in foreign calls.
set -u
bin="vm/cli/spindle"
fails=0
limit=1000000  # KiB: a 1 GB address space
# limited NAME WANT_RC WANT_STDOUT CODE: runs CODE under the limit in a subshell; stdout
# goes to a file (fully buffered), so WANT_STDOUT shows that it was flushed; an exit
# other than 0 must come with "Out of memory." on stderr.
# A sanitizer build reserves terabytes of shadow memory at start: it cannot run under
# `ulimit -v` at all, so those checks run in the plain pass only.
probe=$( (ulimit -v $limit; exec "$bin" -e 'print 1;') 2>&1)
sanitized=0
[[ "$probe" == *Sanitizer* ]] && sanitized=1
limited() {
  local name=$1 want=$2 wantOut=$3 code=$4 rc out err
  if [[ $sanitized -eq 1 ]]; then echo "skip $name: a sanitizer build cannot start under ulimit -v"; return; fi
  (ulimit -v $limit; exec "$bin" -e "$code") >"$TEST_TMPDIR/$name.out" 2>"$TEST_TMPDIR/$name.err"
  rc=$?
  out=$(cat "$TEST_TMPDIR/$name.out"); err=$(cat "$TEST_TMPDIR/$name.err")
  if [[ $rc -ne $want ]]; then echo "FAIL $name: exit $rc, want $want; stdout: ${out:0:200}; stderr: ${err:0:300}"; fails=$((fails+1)); return; fi
  if [[ "$out" != "$wantOut" ]]; then echo "FAIL $name: stdout '${out:0:200}', want '$wantOut'; stderr: ${err:0:300}"; fails=$((fails+1)); return; fi
  if [[ $want -ne 0 && "$err" != "Out of memory."* ]]; then echo "FAIL $name: stderr lacks 'Out of memory.': ${err:0:300}"; fails=$((fails+1)); return; fi
  echo "ok $name"
}
limited oom-start 0 "3" 'print 1 + 2;'
limited oom-bytes 70 "before" 'print "before"; var b = Bytes(17179869184); print "after";'
limited oom-string-doubling 70 "before" 'print "before"; var s = "x"; while (true) s = s + s;'
limited oom-channel 70 "before" 'print "before"; var c = Channel(1000000000); print "after";'
limited oom-heap-exhausted 70 "before" 'print "before"; var l = []; var i = 0; while (true) { l.push([i, i, i, i]); i = i + 1; }'
limited oom-in-fiber 70 "before" 'print "before"; fun f() { return Bytes(17179869184); } var g = spawn f(); g.join(); print "after";'
# Caught: the script goes on, and the memory the failed loop held is usable again.
limited oom-caught 0 "$(printf 'Out of memory.\n[line 1] in script\nOut of memory.\nOut of memory.\n100000')" \
  'try { Bytes(17179869184); } catch (e) { print e.message; print e.trace[0]; }
   try { var s = "x"; while (true) s = s + s; } catch (e) { print e.message; }
   var l = [];
   try { while (true) l.push([1, 2, 3, 4]); } catch (e) { l = nil; print e.message; }
   var m = []; for (var i = 0; i < 100000; i = i + 1) m.push([i]); print m.len();'
# Without a limit a huge channel costs only what it holds (its buffer is calloc'd).
out=$("$bin" -e 'var c = Channel(1000000000); c.send(1); print c.recv();' 2>&1); rc=$?
if [[ $rc -eq 0 && "$out" == "1" ]]; then echo "ok channel-huge-lazy"; else echo "FAIL channel-huge-lazy: exit $rc: ${out:0:300}"; fails=$((fails+1)); fi

# The thread cap: 40 fibers each block their thread in usleep(); with --max-threads 12 and
# 2 Ps, 9 calls may block at once (one M per P and the host thread stay free) and the rest fail in their own fibers, catchably.
cat >"$TEST_TMPDIR/threads.lox" <<'LOX'
var usleep = FFI.fn("usleep", "int", ["uint32"]);
var done = Channel(100);
fun blocker() {
  try { usleep(500000); done.send("ok"); } catch (e) { done.send(e.message); }
}
for (var i = 0; i < 40; i = i + 1) spawn blocker();
var ok = 0; var refused = 0; var msg = "";
for (var i = 0; i < 40; i = i + 1) {
  var m = done.recv();
  if (m == "ok") ok = ok + 1; else { refused = refused + 1; msg = m; }
}
print ok + refused; print refused > 0; print msg;
LOX
out=$("$bin" --procs 2 --max-threads 12 "$TEST_TMPDIR/threads.lox" 2>&1); rc=$?
want=$(printf '40\ntrue\nThread limit exceeded: 9 foreign calls are blocked (max threads 12).')
if [[ $rc -eq 0 && "$out" == "$want" ]]; then echo "ok thread-cap-caught"; else echo "FAIL thread-cap-caught: exit $rc: ${out:0:400}"; fails=$((fails+1)); fi
# The default cap lets all 40 block at once.
out=$("$bin" --procs 2 "$TEST_TMPDIR/threads.lox" 2>&1); rc=$?
if [[ $rc -eq 0 && "$out" == "$(printf '40\nfalse\n')" ]]; then echo "ok thread-cap-default"; else echo "FAIL thread-cap-default: exit $rc: ${out:0:400}"; fails=$((fails+1)); fi
# Uncaught in the main fiber: a runtime error, exit 70.
out=$("$bin" --procs 1 --max-threads 1 -e 'var usleep = FFI.fn("usleep", "int", ["uint32"]); fun f() { usleep(2000000); } spawn f(); sleep(0.2); print "before"; usleep(1);' 2>"$TEST_TMPDIR/cap.err"); rc=$?
out="$out|$(cat "$TEST_TMPDIR/cap.err")"
if [[ $rc -eq 70 && "$out" == "before|Thread limit exceeded: 1 foreign calls are blocked (max threads 1)."* ]]; then echo "ok thread-cap-uncaught"; else echo "FAIL thread-cap-uncaught: exit $rc: ${out:0:400}"; fails=$((fails+1)); fi
"$bin" --max-threads 0 -e 'print 1;' >/dev/null 2>&1; rc=$?
if [[ $rc -eq 64 ]]; then echo "ok max-threads-usage"; else echo "FAIL max-threads-usage: exit $rc"; fails=$((fails+1)); fi
echo "$((13 - fails)) passed, $fails failed"  # 13 checks
exit $((fails > 0))
