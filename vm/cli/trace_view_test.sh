#!/usr/bin/env bash
# The trace viewer (runtime/traceview.h) in a real browser: headless Chromium loads the
# page that `spindle --trace FILE.html` wrote for trace_events.lox and the test reads what
# the page drew from its DOM (<div id="status" data-tracks data-events>, <ul id="tracks">):
# every P's track, the collector's and the STW track, the counters, and events on them.
# A page of an empty trace must draw no events (the check can fail). The screenshot is
# kept in $TEST_UNDECLARED_OUTPUTS_DIR. Chromium missing: installed with
# `tools/setup viewer`, or the test fails saying so.
set -u
bin="vm/cli/spindle"
script="vm/cli/testdata/trace_events.lox"
setup="tools/setup"
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }

if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium is not installed: running '$setup viewer'"
  if ! "$setup" viewer || ! command -v chromium >/dev/null 2>&1; then
    echo "FAIL: chromium is missing and 'tools/setup viewer' could not install it"
    exit 1
  fi
fi

export HOME="$TEST_TMPDIR"
outdir="${TEST_UNDECLARED_OUTPUTS_DIR:-$TEST_TMPDIR}"
browse() {  # browse PAGE ARGS...: headless Chromium on file://PAGE
  local page=$1; shift
  timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$TEST_TMPDIR/chromium-profile" --virtual-time-budget=5000 "$@" "file://$page" 2>"$TEST_TMPDIR/chromium.err"
}

"$bin" --procs 2 --trace "$TEST_TMPDIR/trace.html" "$script" >/dev/null || fail "spindle --trace: exit $?"
dom=$(browse "$TEST_TMPDIR/trace.html" --dump-dom) || { fail "chromium --dump-dom: exit $?"; tail -5 "$TEST_TMPDIR/chromium.err"; }
tracks=$(grep -o 'data-tracks="[0-9]*"' <<<"$dom" | grep -o '[0-9]*')
events=$(grep -o 'data-events="[0-9]*"' <<<"$dom" | grep -o '[0-9]*')
echo "drawn: ${tracks:-none} tracks, ${events:-none} events"
# P 0, P 1, GC (collector), STW pauses + 3 counters at least.
[[ -n "$tracks" && "$tracks" -ge 7 ]] || fail "tracks drawn: '${tracks:-none}', want >= 7"
[[ -n "$events" && "$events" -ge 50 ]] || fail "events drawn: '${events:-none}', want >= 50"
for name in "P 0" "P 1" "GC (collector)" "STW pauses" "heapLive" "heapGoal" "runnable fibers"; do
  grep -q "<li>$name</li>" <<<"$dom" || fail "no track '$name' on the page"
done
grep -q '<td>STW mark termination</td>' <<<"$dom" || fail "the pause table is empty"

browse "$TEST_TMPDIR/trace.html" --window-size=1400,1000 --screenshot="$outdir/trace_view.png" >/dev/null ||
  fail "chromium --screenshot: exit $?"
[[ $(stat -c %s "$outdir/trace_view.png" 2>/dev/null || echo 0) -gt 10000 ]] || fail "no screenshot in $outdir"

# The negative control: an empty trace draws no events.
echo '{"traceEvents":[]}' >"$TEST_TMPDIR/empty.json"
"$bin" trace view "$TEST_TMPDIR/empty.json" -o "$TEST_TMPDIR/empty.html" >/dev/null || fail "trace view empty"
dom=$(browse "$TEST_TMPDIR/empty.html" --dump-dom)
grep -q 'data-events="0"' <<<"$dom" || fail "an empty trace's page claims events"

if [[ $fails -ne 0 ]]; then echo "$fails failed"; exit 1; fi
echo "trace_view_test: all passed (screenshot: $outdir/trace_view.png)"
