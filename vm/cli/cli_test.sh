#!/usr/bin/env bash
# End-to-end checks of the spindle binary's plumbing: flags, exit codes, messages.
set -u
bin="vm/cli/spindle"
fails=0
echo 'print "ok";' >"$TEST_TMPDIR/ok.lox"
echo 'print args;' >"$TEST_TMPDIR/args.lox"
expect() {  # expect NAME WANT_RC GREP_PATTERN -- ARGS...
  local name=$1 want=$2 pattern=$3; shift 4
  local out rc
  out=$("$bin" "$@" 2>&1); rc=$?
  if [[ $rc -ne $want ]]; then echo "FAIL $name: exit $rc, want $want; output: $out"; fails=$((fails+1)); return; fi
  if ! grep -qE -- "$pattern" <<<"$out"; then echo "FAIL $name: output lacks '$pattern': $out"; fails=$((fails+1)); return; fi
  echo "ok $name"
}
expect help 0 "usage: spindle" -- --help
expect version 0 "^spindle [0-9]" -- --version
expect unknown-flag 64 "unknown option '--bogus'" -- --bogus
expect e-missing-arg 64 "-e needs an argument" -- -e
expect run-missing-file 64 "'run' needs a FILE" -- run
expect missing-file 66 "cannot open 'no/such/file.lox'" -- no/such/file.lox
expect empty-file-arg 66 "^spindle: cannot open '': No such file or directory$" -- ''
expect run-empty-file-arg 66 "^spindle: cannot open '': No such file or directory$" -- run ''
expect directory-arg 66 "^spindle: cannot read '$TEST_TMPDIR': Is a directory$" -- "$TEST_TMPDIR"
expect two-e 64 "-e given twice" -- -e "print 1;" -e "print 2;"
printf '\xEF\xBB\xBFprint "bom";\n' >"$TEST_TMPDIR/bom.lox"
expect utf8-bom 0 "^bom$" -- "$TEST_TMPDIR/bom.lox"
expect gc-percent-range 64 "--gc-percent needs an integer in \[-1, 2147483647\], got '99999999999'" -- --gc-percent 99999999999 -e "print 1;"
expect e-runs 0 "^3$" -- -e "print 1 + 2;"
expect e-compile-error 65 "Error at end: Expect expression." -- -e "print"
expect e-runtime-error 70 "in script" -- -e "nil();"
expect run-file 0 "^ok$" -- run "$TEST_TMPDIR/ok.lox"
expect script-args 0 "^\[a, b\]$" -- "$TEST_TMPDIR/args.lox" a b
expect disasm 0 "OP_PRINT" -- --disasm -e "print 1;"
expect procs-bad 64 "--procs needs an integer" -- --procs zero -e "print 1;"
expect procs-too-many 64 "--procs needs an integer in \[1, 256\], got '1000'" -- --procs 1000 -e "print 1;"
expect procs-max 0 "^256$" -- --procs 256 -e "print procs();"
expect procs-ok 0 "^1$" -- --procs 4 --gc-percent 50 --gctrace --gcstress-continuous 1 --gccheckmark -e "print 1;"
ffi='var i = Bytes(8); var o = Bytes(8); o.write("pointer", 0, i); FFI.fn("memcpy", "pointer", ["pointer", "pointer", "size_t"])(Bytes(8), o, 8); print "passed";'
expect ffi-check 70 "unpinned heap pointer at offset 0" -- --ffi-check -e "$ffi"
expect no-ffi-check 0 "^passed$" -- --no-ffi-check -e "$ffi"
# A Pinner dropped without unpin(): a cycle finds its inner pinner unreachable, the
# finalizer (on the finalizer G, after the cycle) reports the leak on stderr and unpins.
leak='var b = Bytes(16); var q = Pinner(); fun leak() { var p = Pinner(); p.pin(b); } leak(); print q.isPinned(b); var n = 0; while (q.isPinned(b) and n < 1000) { gc(); n = n + 1; } print q.isPinned(b);'
for procs in 1 2; do
  out=$("$bin" --procs $procs -e "$leak" 2>"$TEST_TMPDIR/leak.err"); rc=$?
  err=$(cat "$TEST_TMPDIR/leak.err")
  if [[ $rc -eq 0 && "$out" == $'true\nfalse' && "$err" == "pinner: found leaking pinned pointer; forgot to call unpin()?" ]]; then
    echo "ok pinner-leak-procs-$procs"
  else
    echo "FAIL pinner-leak-procs-$procs: exit $rc; stdout: $out; stderr: $err"; fails=$((fails+1))
  fi
done
expect stats 0 "stats: .* objects" -- --stats -e "print 1;"
# Garbage enough for several cycles: gctrace prints Go's line format, --stats counts them.
garbage='var t = 0; for (var i = 0; i < 300000; i = i + 1) { var l = [i, i, i]; t = t + l[1]; } print t;'
expect gctrace 0 "^gc [0-9]+ @[0-9.]+s [0-9]+%: [0-9.]+\+[0-9.]+\+[0-9.]+ ms clock, [0-9.]+\+[0-9.]+/[0-9.]+/[0-9.]+\+[0-9.]+ ms cpu, [0-9]+->[0-9]+->[0-9]+ MB, [0-9]+ MB goal, [0-9]+ MB stacks, [0-9]+ MB globals, [0-9]+ P$" -- --gctrace -e "$garbage"
expect stats-cycles 0 "stats: .* [1-9][0-9]* GC cycles, max pause" -- --stats -e "$garbage"
expect gcstress-checkmark 0 "^4.49998e\+10$" -- --gcstress-continuous 1 --gccheckmark -e "$garbage"
# Exact gcstress: a complete cycle every 1000 allocations (about 300 here).
expect gcstoptheworld 0 "^4.49998e\+10$" -- --gcstoptheworld --gccheckmark --gcstress-continuous 1 -e "$garbage"
expect clobberfree 0 "^4.49998e\+10$" -- --clobberfree --gcstress-continuous 1 -e "$garbage"
expect help-stress 0 "--gcstress-continuous" -- --help
expect help-verify 0 "--gcverify " -- --help
expect gcverify 0 "^4.49998e\+10$" -- --gcverify --procs 2 -e "$garbage"
expect gcstress-exact 0 "^4.49998e\+10$" -- --gcstress 1000 --gccheckmark -e "$garbage"
# --gclog: one JSON line per cycle; the interned strings the loop drops are cleared from
# the string table by the sweep ("string table weak"); gc() is a forced cycle, --gcstress
# cycles are "gcstress". Every line parses and carries the record's fields.
strings='var t = 0; for (var i = 0; i < 100000; i = i + 1) { var s = "k" + str(i); t = t + s.len(); } gc(); print t;'
expect gclog-usage 64 "--gclog needs a FILE" -- --gclog
expect gclog-unwritable 74 "cannot write --gclog file $TEST_TMPDIR/no/dir/gc.log" -- --gclog "$TEST_TMPDIR/no/dir/gc.log" -e "print 1;"
expect help-gclog 0 "--gclog FILE" -- --help
check_gclog() {  # check_gclog NAME FILE CAUSE: every line JSON; a weak "string table weak" clearing; CAUSE seen
  if python3 - "$2" "$3" <<'PY'; then echo "ok $1"; else echo "FAIL $1: $(head -c 600 "$2")"; fails=$((fails+1)); fi
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines, "no lines"
recs = [json.loads(l) for l in lines]
for i, r in enumerate(recs):
    assert r["seq"] == recs[0]["seq"] + i and r["cycle"] >= 1, r
    assert set(r["phases"]) == {"sweep_termination", "mark", "mark_termination", "sweep"}, r
    assert all(p["duration_ns"] >= 0 for p in r["phases"].values()), r
    assert [s["phase"] for s in r["stw"]] == ["sweep_termination", "mark_termination"], r
    assert all(s["to_safepoint_ns"] >= 0 and s["work_ns"] >= 0 for s in r["stw"]), r
    assert [s["step"] for s in r["mark_termination_steps"]][:3] == ["root flush", "stack rescan", "drain and barrier off"], r
    assert r["heap_goal"] >= -1, r  # -1: pacing off
    for k in ("heap_before", "heap_at_termination", "heap_marked", "assist_ns", "background_mark_ns",
              "spans_swept", "finalizers_queued", "finalizers_run"):
        assert r[k] >= 0, (k, r)
assert any(w["table"] == "string table weak" and w["objects"] > 0 for r in recs for w in r["weak"]), "no weak clearing"
assert any(r["cause"] == sys.argv[2] for r in recs), "no cause " + sys.argv[2]
PY
}
expect gclog-run 0 "^588890$" -- --gclog "$TEST_TMPDIR/gc.jsonl" -e "$strings"
check_gclog gclog-json "$TEST_TMPDIR/gc.jsonl" forced
# The last line is the final gc()'s: records published before exit reach the file.
if tail -n 1 "$TEST_TMPDIR/gc.jsonl" | grep -q '"cause":"forced"'; then echo "ok gclog-last-forced"; else echo "FAIL gclog-last-forced: $(tail -n 1 "$TEST_TMPDIR/gc.jsonl" | head -c 200)"; fails=$((fails+1)); fi
expect gclog-gcstress-run 0 "^588890$" -- --gcstress 5000 --gc-percent -1 --gclog "$TEST_TMPDIR/gcstress.jsonl" -e "$strings"
check_gclog gclog-gcstress-json "$TEST_TMPDIR/gcstress.jsonl" gcstress
# When the main script ends, the program ends (as in Go), even while a spawned fiber is
# blocked in a 30 s C sleep: the host thread never makes another fiber's foreign call,
# and Vm destruction does not wait for an M stuck in C. `timeout 20` fails the test (rc
# 124) long before the sleep would end. A runtime error in main is printed at once too,
# and the main loop's allocation does not wait for the sleeping fiber's stack scan (a
# fiber in a foreign call is scanned there).
sleeper='fun f() { FFI.fn("sleep", "uint32", ["uint32"])(30); print "woke"; } spawn f();'
for procs in 1 2; do
  out=$(timeout 20 "$bin" --procs $procs -e "$sleeper print \"main done\";" 2>&1); rc=$?
  if [[ $rc -eq 0 && "$out" == "main done" ]]; then echo "ok exit-while-ffi-sleeps-procs-$procs"; else echo "FAIL exit-while-ffi-sleeps-procs-$procs: exit $rc; output: $out"; fails=$((fails+1)); fi
  out=$(timeout 20 "$bin" --procs $procs -e "$sleeper nil();" 2>&1); rc=$?
  if [[ $rc -eq 70 && "$out" == *"Can only call functions and classes."* ]]; then echo "ok error-while-ffi-sleeps-procs-$procs"; else echo "FAIL error-while-ffi-sleeps-procs-$procs: exit $rc; output: $out"; fails=$((fails+1)); fi
  out=$(timeout 20 "$bin" --procs $procs -e "$sleeper $garbage" 2>&1); rc=$?
  if [[ $rc -eq 0 && "$out" == "4.49998e+10" ]]; then echo "ok gc-while-ffi-sleeps-procs-$procs"; else echo "FAIL gc-while-ffi-sleeps-procs-$procs: exit $rc; output: $out"; fails=$((fails+1)); fi
done
# Write failures never abort: a closed or full stderr keeps each exit code; a stdout that
# cannot be written (full, closed) is reported with exit 74.
rc_is() {  # rc_is NAME WANT_RC RC
  if [[ $3 -eq $2 ]]; then echo "ok $1"; else echo "FAIL $1: exit $3, want $2"; fails=$((fails+1)); fi
}
"$bin" -e 'nil.x();' 2>&-; rc_is stderr-closed-runtime-error 70 $?
"$bin" -e 'nil.x();' 2>/dev/full; rc_is stderr-full-runtime-error 70 $?
"$bin" -e 'print' 2>/dev/full; rc_is stderr-full-compile-error 65 $?
"$bin" --bogus 2>/dev/full; rc_is stderr-full-usage 64 $?
"$bin" --procs x -e 'print 1;' 2>&-; rc_is stderr-closed-usage 64 $?
"$bin" --gctrace -e "$garbage" >/dev/null 2>/dev/full; rc_is stderr-full-gctrace 0 $?
"$bin" --gctrace -e "$garbage" >/dev/null 2>&-; rc_is stderr-closed-gctrace 0 $?
"$bin" -e 'print 1;' >/dev/full 2>"$TEST_TMPDIR/full.err"; rc_is stdout-full 74 $?
grep -q "error writing output: No space left on device" "$TEST_TMPDIR/full.err" || { echo "FAIL stdout-full message: $(cat "$TEST_TMPDIR/full.err")"; fails=$((fails+1)); }
"$bin" -e 'for (var i = 0; i < 100000; i = i + 1) print i;' >/dev/full 2>/dev/null; rc_is stdout-full-long 74 $?
"$bin" --version >/dev/full 2>/dev/null; rc_is stdout-full-version 74 $?
"$bin" -e 'print 1;' >&- 2>/dev/null; rc_is stdout-closed 74 $?
"$bin" -e 'print 1; nil();' >/dev/full 2>/dev/null; rc_is stdout-full-runtime-error 70 $?
# 100,000 nested ifs (each closed): one "Too much nesting." error, exit 65, no crash.
printf 'if (true) %.0s' $(seq 100000) >"$TEST_TMPDIR/deep.lox"; echo 'print 1;' >>"$TEST_TMPDIR/deep.lox"
out=$("$bin" "$TEST_TMPDIR/deep.lox" 2>&1); rc=$?
if [[ $rc -eq 65 && "$out" == *"Too much nesting." && $(wc -l <<<"$out") -eq 1 ]]; then echo "ok deep-nesting"; else echo "FAIL deep-nesting: exit $rc; output: ${out:0:300}"; fails=$((fails+1)); fi
out=$(echo "print 1 + 2;" | "$bin" 2>&1); if grep -q "3" <<<"$out"; then echo "ok repl"; else echo "FAIL repl: $out"; fails=$((fails+1)); fi
# A spawn expression's failure no join saw: one line on stderr at the end, exit code unchanged.
expect never-joined 0 "^fiber 2 failed and was never joined: Uncaught boom\.$" -- -e 'fun bad() { throw "boom"; } var f = spawn bad(); while (!f.done()) yield(); print "end";'
expect never-joined-after-error 70 "^fiber 2 failed and was never joined: Uncaught boom\.$" -- -e 'fun bad() { throw "boom"; } var f = spawn bad(); while (!f.done()) yield(); nil();'
# Every Pinner dropped with pins is reported, also those dropped after the program's last
# cycle (pacing off: there is none before the end; one last cycle at exit finds them).
leaks=$("$bin" --gc-percent -1 -e 'var b = Bytes(8); for (var i = 0; i < 3000; i = i + 1) { var p = Pinner(); p.pin(b); } print "done";' 2>&1 | grep -c "found leaking pinned pointer")
if [[ $leaks -eq 3000 ]]; then echo "ok pinner-leaks-all-reported"; else echo "FAIL pinner-leaks-all-reported: $leaks of 3000 reported"; fails=$((fails+1)); fi
# SIGQUIT, as Go: every fiber with what it waits for and its Lox stack, then exit status 2.
"$bin" -e 'var c = Channel(); fun f() { c.recv(); } spawn f(); while (true) {}' 2>"$TEST_TMPDIR/quit.err" &
qpid=$!
sleep 1
kill -QUIT $qpid; wait $qpid; rc=$?
quit=$(cat "$TEST_TMPDIR/quit.err")
if [[ $rc -eq 2 && "$quit" == "SIGQUIT: quit"* && "$quit" == *"[chan receive]:"*"[line 1] in f()"* && "$quit" == *"gc: phase"* ]]; then
  echo "ok sigquit-dump"
else
  echo "FAIL sigquit-dump: exit $rc; stderr: $quit"; fails=$((fails+1))
fi
exit $((fails > 0))
