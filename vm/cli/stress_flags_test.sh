#!/usr/bin/env bash
# The collector's stress flags end to end through the CLI (docs/STRESS.md): each flag
# reaches the runtime (a counter or a failure it alone causes), a planted write after
# free is caught by --clobberfree in every build and its fatal error names the GC phase,
# the M, the P, the running fiber's trace and the seed; the worked example's exact cycle
# count; bad arguments are usage or runtime errors, never a crash.
set -u
bin="vm/cli/spindle"
data="vm/cli/testdata"
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }
# check NAME WANT_RC WANT_STDOUT_OR_GLOB -- ARGS...: stdout+stderr must match the glob.
check() {
  local name=$1 want=$2 glob=$3; shift 4
  local out rc
  out=$("$bin" "$@" 2>&1); rc=$?
  # shellcheck disable=SC2053
  if [[ $rc -eq $want && "$out" == $glob ]]; then echo "ok $name"; else fail "$name: exit $rc (want $want): ${out:0:600}"; fi
}

# --gcverify: the verifier runs before and after every cycle (off: it never runs).
check gcverify-on 0 "true" -- --gcverify -e 'gc(); print gcstats().heapVerifications >= 2;'
check gcverify-off 0 "0" -- -e 'gc(); print gcstats().heapVerifications;'
# --gcstoptheworld: every cycle marks with the world stopped.
check gcstoptheworld-on 0 "true" -- --gcstoptheworld -e 'gc(); gc(); var s = gcstats(); print s.stwMarkCycles == s.cycles and s.cycles >= 2;'
check gcstoptheworld-off 0 "0" -- -e 'gc(); print gcstats().stwMarkCycles;'
# --clobberfree: the planted write after free is a fatal error when the slot is reused,
# naming the slot and the word; the fatal error shows the collector's phase, the M and P,
# every G with the running fiber's Lox trace (the allocating loop, line 14) and the seed.
out=$("$bin" --procs 1 --no-ffi-check --clobberfree --sched-seed 5 "$data/write_after_free.lox" 2>&1); rc=$?
if [[ $rc -eq 134 && "$out" == *"was written after it was freed: word "*" = 0x2a2a2a2a2a2a2a2a, want poison 0xdeadbeefdeadbeef"* &&
      "$out" == *"gc: phase "* && "$out" =~ on\ M\ [0-9]+,\ P\ 0,\ G\ [0-9]+ &&
      "$out" == *"[running]:"$'\n\t'"fiber 1"$'\n\t'"[line 14] in script"* &&
      "$out" == *"sched seed 5 (replay with --sched-seed 5)" ]]; then
  echo "ok clobberfree-catches"
else
  fail "clobberfree-catches: exit $rc: ${out:0:1200}"
fi
# The worked example: with one P and pacing off, cycles = allocations / N exactly.
for n in 1 7 100; do
  out=$("$bin" --procs 1 --gc-percent -1 --gcstress $n "$data/churn.lox" 2>&1); rc=$?
  allocs=$(sed -n 's/^allocs \([0-9]*\), cycles \([0-9]*\), stress \([0-9]*\)$/\1 \2 \3/p' <<<"$out")
  read -r a c s <<<"$allocs"
  if [[ $rc -eq 0 && "$out" == "27000"$'\n'* && -n "$a" && $c -eq $((a / n)) && $s -eq $c ]]; then
    echo "ok churn-gcstress-$n: $a allocations, $c cycles"
  else
    fail "churn-gcstress-$n: exit $rc: $out"
  fi
done

# --gclog is passed on to stress's runs: the replay line carries it, and as each run
# rewrites the file, the log left is the failing seed's.
out=$("$bin" --gclog "$TEST_TMPDIR/stress.jsonl" --procs 2 --gcstress 50 stress "$data/racy_counter.lox" --seeds 1..200 2>&1); rc=$?
seed=$(sed -n 's/^spindle stress: seed \([0-9]*\) failed.*/\1/p' <<<"$out")
if [[ $rc -eq 1 && "$out" == *"replay: "*"--gclog $TEST_TMPDIR/stress.jsonl"*"--sched-seed $seed "* && -s "$TEST_TMPDIR/stress.jsonl" ]]; then
  cp "$TEST_TMPDIR/stress.jsonl" "$TEST_TMPDIR/stress.first"
  eval "$(sed -n 's/^replay: //p' <<<"$out")" >/dev/null 2>&1
  if [[ $(wc -l <"$TEST_TMPDIR/stress.jsonl") -eq $(wc -l <"$TEST_TMPDIR/stress.first") ]]; then echo "ok stress-gclog: seed $seed"; else fail "stress-gclog: the replay logged another number of cycles"; fi
else
  fail "stress-gclog: exit $rc: $out"
fi

# --gclog's cause "memory limit": paced cycles whose goal the limit capped (a 6 MiB limit
# over about 3 MiB kept: the goal, twice the live heap, is capped at every cycle).
limit='setMemoryLimit(6*1024*1024); var keep = []; for (var i = 0; i < 40000; i = i + 1) keep.push([i, i]); var x = nil; for (var i = 0; i < 200000; i = i + 1) x = [i]; print "done";'
out=$("$bin" --gclog "$TEST_TMPDIR/limit.jsonl" -e "$limit" 2>&1); rc=$?
if [[ $rc -eq 0 && "$out" == "done" ]] && grep -q '"cause":"memory limit"' "$TEST_TMPDIR/limit.jsonl"; then
  echo "ok gclog-memory-limit"
else
  fail "gclog-memory-limit: exit $rc: $out: $(grep -o '"cause":"[a-z ]*"' "$TEST_TMPDIR/limit.jsonl" | sort | uniq -c)"
fi

# Bad input: usage errors (64) or runtime errors (70) with a message, never a crash.
printf 'print 1;\n' >"$TEST_TMPDIR/one.lox"
check seeds-reversed 64 "*--seeds needs a range A..B with 1 <= A <= B, got '5..1'*" -- stress "$TEST_TMPDIR/one.lox" --seeds 5..1
check seeds-word 64 "*--seeds needs a range A..B with 1 <= A <= B, got 'x'*" -- stress "$TEST_TMPDIR/one.lox" --seeds x
check seeds-zero 64 "*got '0..3'*" -- stress "$TEST_TMPDIR/one.lox" --seeds 0..3
check seeds-missing 64 "*--seeds needs a range A..B*" -- stress "$TEST_TMPDIR/one.lox" --seeds
check seeds-overflow 64 "*got '1..99999999999999999999'*" -- stress "$TEST_TMPDIR/one.lox" --seeds 1..99999999999999999999
check sched-seed-negative 64 "*--sched-seed needs an unsigned integer, got '-1'*" -- --sched-seed -1 -e 'print 1;'
check gclog-no-dir 74 "*cannot write --gclog file /nonexistent/dir/f*" -- --gclog /nonexistent/dir/f -e 'print 1;'
check gcpath-number 70 "gcpath() takes a heap object (a string, list, map, instance, ...), got a number."$'\n'"*" -- -e 'gcpath(1);'
check gcpath-arity 70 "Expected 1 arguments but got 0.*" -- -e 'gcpath();'
check census-arity 70 "Expected 0 arguments but got 1.*" -- -e 'gccensus(1);'
check gcevents-arity 70 "Expected 0 arguments but got 1.*" -- -e 'gcevents(nil);'
check gcverify-arity 70 "Expected 0 arguments but got 1.*" -- -e 'gcverify(1);'
check gcpercent-type 70 "setGCPercent() takes an integer from -1 (off) to 1e9.*" -- -e 'setGCPercent("x");'
check gcpercent-nan 70 "setGCPercent() takes an integer from -1 (off) to 1e9.*" -- -e 'setGCPercent(0/0);'
check memlimit-type 70 "setMemoryLimit() takes a number of bytes (>= 0; inf: no limit).*" -- -e 'setMemoryLimit([]);'
check memlimit-nan 70 "setMemoryLimit() takes a number of bytes (>= 0; inf: no limit).*" -- -e 'setMemoryLimit(0/0);'
check freeos-arity 70 "Expected 0 arguments but got 1.*" -- -e 'freeOSMemory(1);'
check waitfin-arity 70 "Expected 0 arguments but got 1.*" -- -e 'gcWaitFinalizers("x");'
# A run that hangs is stopped after --timeout with SIGQUIT: the seed fails, its stderr holds
# every fiber (the spinning one and the parked one) and the collector's state.
printf 'var c = Channel();\nfun f() { c.recv(); }\nspawn f();\nwhile (true) {}\n' >"$TEST_TMPDIR/hang.lox"
check stress-timeout 1 "spindle stress: seed 1 failed: the run did not end within 1 s (--timeout); stopped with SIGQUIT"$'\n'"its stderr:"$'\n'"SIGQUIT: quit"$'\n'"*\[chan receive\]:*in f()*gc: phase*replay: *--sched-seed 1*" -- stress "$TEST_TMPDIR/hang.lox" --seeds 1..5 --timeout 1
check stress-timeout-word 64 "*--timeout needs seconds in \[0, 86400\], got 'x'*" -- stress "$TEST_TMPDIR/hang.lox" --seeds 1..5 --timeout x

[[ $fails -eq 0 ]] || { echo "$fails failed"; exit 1; }
echo "all ok"
