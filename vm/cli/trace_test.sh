#!/usr/bin/env bash
# spindle --trace: a script with fibers, channels, select, sleep, a foreign call and
# forced gc() writes a trace that parses as JSON (python3's json) and holds each event
# kind (runtime/trace.h); --trace FILE.html and `spindle trace view` write the timeline
# page; errors (no FILE, an unwritable path) are reported, not fatal.
set -u
bin="vm/cli/spindle"
script="vm/cli/testdata/trace_events.lox"
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }

out=$("$bin" --procs 4 --trace "$TEST_TMPDIR/t.json" "$script" 2>&1); rc=$?
[[ $rc -eq 0 ]] || fail "run: exit $rc: $out"
[[ "$out" == $'301\n7\n7\n20\ntrue' ]] || fail "run: output '$out'"

python3 - "$TEST_TMPDIR/t.json" <<'PY' || fails=$((fails+1))
import json, sys
d = json.load(open(sys.argv[1]))
evs = d["traceEvents"]
def has(pred):
    return any(pred(e) for e in evs)
tracks = {e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
reasons = {e.get("args", {}).get("reason") for e in evs if e["ph"] == "X" and e.get("cat") == "fiber"}
names = {e["name"] for e in evs}
checks = {
    "a track per P": {"P 0"} <= tracks,
    "the collector's track": "GC (collector)" in tracks,
    "fiber run spans named by Lox functions": has(lambda e: e["ph"] == "X" and e.get("cat") == "fiber" and e["name"] == "churn()"),
    "park instants": has(lambda e: e["ph"] == "i" and e["name"] == "park"),
    "unpark instants": has(lambda e: e["ph"] == "i" and e["name"] == "unpark"),
    "spawn flow start": has(lambda e: e["ph"] == "s" and e["name"] == "spawn"),
    "spawn flow end": has(lambda e: e["ph"] == "f" and e["name"] == "spawn"),
    "STW pauses": {"STW sweep termination", "STW mark termination"} <= names,
    "GC phases": {"sweep termination", "concurrent mark", "mark termination", "sweep"} <= names,
    "mark assists": "mark assist" in names,
    "idle-P mark work": "idle mark" in names,
    "foreign calls": "foreign call" in names,
    "counters": {"heapLive", "heapGoal", "runnable fibers"} <= {e["name"] for e in evs if e["ph"] == "C"},
    "forced cycles": has(lambda e: e["name"] == "GC cycle" and "(forced)" in e.get("args", {}).get("detail", "")),
}
for reason in ["chan send", "chan receive", "select", "sleep", "GC assist wait"]:
    checks["park reason " + reason] = reason in reasons
bad = [k for k, ok in checks.items() if not ok]
for k in checks:
    print(("FAIL " if k in bad else "ok ") + k)
sys.exit(1 if bad else 0)
PY

# The HTML page: straight from --trace FILE.html, and from `spindle trace view`.
"$bin" --trace "$TEST_TMPDIR/t.html" -e 'fun f() { return 1; } spawn f(); gc();' >/dev/null 2>&1 || fail "--trace FILE.html: exit $?"
grep -q '<canvas id="view"' "$TEST_TMPDIR/t.html" && grep -q '"traceEvents"' "$TEST_TMPDIR/t.html" ||
  fail "--trace FILE.html is not the timeline page"
out=$("$bin" trace view "$TEST_TMPDIR/t.json" -o "$TEST_TMPDIR/view.html" 2>&1) || fail "trace view: $out"
grep -q '"name":"churn()"' "$TEST_TMPDIR/view.html" || fail "trace view: the page lacks the trace"
out=$("$bin" trace view "$TEST_TMPDIR/t.json" 2>&1) || fail "trace view default: $out"
[[ -s "$TEST_TMPDIR/t.html" && "$out" == "$TEST_TMPDIR/t.html" ]] || fail "trace view default output: $out"

# Errors.
out=$("$bin" --trace 2>&1); rc=$?
[[ $rc -eq 64 && "$out" == *"--trace needs a FILE"* ]] || fail "--trace without FILE: $rc $out"
out=$("$bin" --trace /nonexistent/dir/t.json -e 'print 1;' 2>&1); rc=$?
[[ $rc -eq 74 && "$out" == *"cannot open trace file"* ]] || fail "unwritable trace: $rc $out"
out=$("$bin" trace view "$TEST_TMPDIR/none.json" 2>&1); rc=$?
[[ $rc -eq 66 && "$out" == *"cannot read"* ]] || fail "trace view of a missing file: $rc $out"
out=$("$bin" trace 2>&1); rc=$?
[[ $rc -eq 64 && "$out" == *"usage: spindle trace view"* ]] || fail "trace without view: $rc $out"

if [[ $fails -ne 0 ]]; then echo "$fails failed"; exit 1; fi
echo "trace_test: all passed"
