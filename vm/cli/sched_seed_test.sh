#!/usr/bin/env bash
# Reproducible schedules (--sched-seed) and `spindle stress`, end to end:
#   - a select-heavy program with GC on (paced, and a cycle asked for every 2000
#     allocations) and --procs 2 prints the same interleaving fingerprint and the same
#     gctrace cycle count in two runs with the same seed;
#   - three seeds give at least two fingerprints;
#   - sleep runs on a virtual clock (a 1000 s sleep returns at once, in order);
#   - `spindle stress` finds the planted bug of racy_counter.lox, and the command it prints
#     replays the failure (the same wrong output).
set -u
bin="vm/cli/spindle"
data="vm/cli/testdata"
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }

# run SEED: stdout of the select program, then "cycles N" from its gctrace.
run() {
  local out
  out=$("$bin" --procs 2 --gctrace --gcstress-continuous 2000 --sched-seed "$1" "$data/select_fingerprint.lox" 2>"$TEST_TMPDIR/err.$1")
  local rc=$?
  [[ $rc -eq 0 ]] || fail "seed $1 exited $rc: $(cat "$TEST_TMPDIR/err.$1")"
  echo "$out"
  echo "cycles $(grep -c '^gc [0-9]' "$TEST_TMPDIR/err.$1")"
}
a=$(run 11); b=$(run 11)
if [[ "$a" == "$b" && "$a" == *"cycles "[1-9]* ]]; then echo "ok same-seed: $(tr '\n' ' ' <<<"$a")"; else fail "same-seed: '$a' vs '$b'"; fi
prints=$(for s in 11 12 13; do run $s | sed -n 2p; done | sort -u | wc -l)
if [[ $prints -ge 2 ]]; then echo "ok seeds-differ: $prints fingerprints"; else fail "seeds-differ: 3 seeds gave $prints fingerprint"; fi

# Virtual time: sleep(1000) costs no real time, sleepers wake in deadline order.
sleepy='var ch = Channel(3); fun s(t) { sleep(t); ch.send(t); } spawn s(1000); spawn s(3); spawn s(500); print ch.recv(); print ch.recv(); print ch.recv();'
out=$(timeout 20 "$bin" --procs 2 --sched-seed 3 -e "$sleepy" 2>&1); rc=$?
if [[ $rc -eq 0 && "$out" == $'3\n500\n1000' ]]; then echo "ok virtual-sleep"; else fail "virtual-sleep: exit $rc: $out"; fi

# A seeded run that fails names its seed.
out=$("$bin" --sched-seed 42 -e 'nil();' 2>&1); rc=$?
if [[ $rc -eq 70 && "$out" == *"sched seed 42 (replay with --sched-seed 42)"* ]]; then echo "ok failure-names-seed"; else fail "failure-names-seed: exit $rc: $out"; fi

# The planted bug: stress finds a seed whose output differs, and its replay repeats it.
report=$("$bin" --procs 2 stress "$data/racy_counter.lox" --seeds 1..200); rc=$?
replay=$(sed -n 's/^replay: //p' <<<"$report")
seed=$(sed -n 's/^spindle stress: seed \([0-9]*\) failed.*/\1/p' <<<"$report")
if [[ $rc -eq 1 && -n "$seed" && "$replay" == *"--procs 2 --sched-seed $seed "* ]]; then
  echo "ok stress-finds: seed $seed"
else
  fail "stress-finds: exit $rc: $report"
fi
want=$(sed -n "s/.*line 1 is '\([0-9]*\)'.*/\1/p" <<<"$report")
for k in 1 2; do
  got=$(eval "$replay")
  if [[ -n "$want" && "$got" == "$want" && "$got" != "4000" ]]; then echo "ok replay-$k: $got"; else fail "replay-$k: '$got', want '$want' (not 4000)"; fi
done
# Output that depends on the schedule is a failure too.
report=$("$bin" stress "$data/select_fingerprint.lox" --seeds 1..3); rc=$?
if [[ $rc -eq 1 && "$report" == *"seed 2 failed"* ]]; then echo "ok stress-select-differs"; else fail "stress-select-differs: exit $rc: $report"; fi
# A program whose output does not depend on the schedule passes every seed.
printf 'print 1;\n' >"$TEST_TMPDIR/one.lox"
report=$("$bin" stress "$TEST_TMPDIR/one.lox" --seeds 1..5); rc=$?
if [[ $rc -eq 0 && "$report" == *"seeds 1..5 passed"* ]]; then echo "ok stress-passes"; else fail "stress-passes: exit $rc: $report"; fi
out=$("$bin" stress "$TEST_TMPDIR/one.lox" 2>&1); rc=$?
if [[ $rc -eq 64 && "$out" == *"needs --seeds A..B"* ]]; then echo "ok stress-usage"; else fail "stress-usage: exit $rc: $out"; fi

out=$("$bin" --sched-seed x -e 'print 1;' 2>&1); rc=$?
if [[ $rc -eq 64 && "$out" == *"--sched-seed needs an unsigned integer, got 'x'"* ]]; then echo "ok sched-seed-usage"; else fail "sched-seed-usage: exit $rc: $out"; fi

[[ $fails -eq 0 ]] || { echo "$fails failed"; exit 1; }
echo "all ok"
