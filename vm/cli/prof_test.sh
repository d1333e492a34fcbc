#!/usr/bin/env bash
# Issue 18's telemetry and profiles, end to end through the spindle binary:
#   - --gctrace lines match Go's full gctrace regular expression (and the scavenger's
#     scvg pair Go's), with " (forced)" exactly on the cycles gc() and freeOSMemory() ran;
#   - --stats prints pause percentiles, assist time, the allocation rate and a histogram;
#     gcstats() has the same fields;
#   - --cpuprofile and --memprofile write files `go tool pprof -top` accepts (golang-go,
#     tools/setup) with the expected Lox function on top, and so does `spindle prof top`;
#     natives show as `<native NAME>`; the leaf frame's line is the sampled line;
#     `spindle prof svg` draws a flame graph.
set -u
bin="vm/cli/spindle"
hot="vm/cli/testdata/prof_hot.lox"
alloc="vm/cli/testdata/prof_alloc.lox"
tmp="$TEST_TMPDIR"
export HOME="$tmp" GOCACHE="$tmp/gocache" PPROF_TMPDIR="$tmp/pprof"
fails=0
fail() { echo "FAIL $1"; fails=$((fails+1)); }
ok() { echo "ok $1"; }

# Go 1.19's gctrace line (runtime/mgc.go gcMarkTermination), every field a number.
num='[0-9]+(\.[0-9]+)?'
gc_re="^gc [0-9]+ @[0-9]+\.[0-9]{3}s [0-9]+%: $num\+$num\+$num ms clock, $num\+$num/$num/$num\+$num ms cpu, [0-9]+->[0-9]+->[0-9]+ MB, [0-9]+ MB goal, [0-9]+ MB stacks, [0-9]+ MB globals, [0-9]+ P( \(forced\))?$"
scvg1_re='^scvg[0-9]+: [0-9]+ MB released$'
scvg2_re='^scvg[0-9]+: inuse: [0-9]+, idle: [0-9]+, sys: [0-9]+, released: [0-9]+, consumed: [0-9]+ \(MB\)$'

# --- gctrace --------------------------------------------------------------------------
# Pacing off: only the cycles the script asks for run, so all four are forced.
"$bin" --gctrace --gc-percent -1 -e '
var l = [];
for (var i = 0; i < 300000; i = i + 1) l.push([i]);
gc();
l = nil;
gc();
freeOSMemory();
gc();
print "done";' >"$tmp/gctrace.out" 2>"$tmp/gctrace.err"
rc=$?
gclines=$(grep -c '^gc ' "$tmp/gctrace.err")
bad=$(grep '^gc ' "$tmp/gctrace.err" | grep -Ecv "$gc_re")
forced=$(grep '^gc ' "$tmp/gctrace.err" | grep -c ' (forced)$')
if [[ $rc -ne 0 || $gclines -ne 4 || $bad -ne 0 || $forced -ne 4 ]]; then
  fail "gctrace: rc $rc, $gclines lines (want 4), $bad not matching Go's regexp, $forced forced (want 4):"
  cat "$tmp/gctrace.err"
else ok "gctrace-go-regexp"; fi
s1=$(grep -c '^scvg[0-9]*: [0-9]* MB released' "$tmp/gctrace.err")
s1bad=$(grep '^scvg[0-9]*: [0-9]* MB' "$tmp/gctrace.err" | grep -Ecv "$scvg1_re")
s2=$(grep -c '^scvg[0-9]*: inuse' "$tmp/gctrace.err")
s2bad=$(grep '^scvg[0-9]*: inuse' "$tmp/gctrace.err" | grep -Ecv "$scvg2_re")
other=$(grep -Ev '^(gc|scvg)[0-9 ]' "$tmp/gctrace.err" | wc -l)
if [[ $s1 -lt 1 || $s1 -ne $s2 || $s1bad -ne 0 || $s2bad -ne 0 || $other -ne 0 ]]; then
  fail "scvg: $s1 released lines, $s2 inuse lines, $s1bad+$s2bad not matching, $other other lines:"
  cat "$tmp/gctrace.err"
else ok "gctrace-scvg"; fi
# A paced cycle is not forced.
"$bin" --gctrace -e 'var l = []; for (var i = 0; i < 300000; i = i + 1) l.push([i]); print "x";' \
  >/dev/null 2>"$tmp/paced.err"
if [[ $(grep -c '^gc ' "$tmp/paced.err") -lt 1 || $(grep -c '(forced)' "$tmp/paced.err") -ne 0 ]] ||
   grep '^gc ' "$tmp/paced.err" | grep -Eqv "$gc_re"; then
  fail "gctrace-paced:"; cat "$tmp/paced.err"
else ok "gctrace-paced-not-forced"; fi

# --- --stats and gcstats() --------------------------------------------------------------
"$bin" --stats -e 'gc(); gc(); gc(); var s = gcstats();
print s.pauseP50Ns > 0 and s.pauseP50Ns <= s.pauseP99Ns and s.pauseP99Ns <= s.maxPauseNs;
print s.allocRate > 0 and s.assistTimeNs >= 0;' >"$tmp/stats.out" 2>"$tmp/stats.err"
if [[ "$(cat "$tmp/stats.out")" != $'true\ntrue' ]]; then
  fail "gcstats-fields: $(cat "$tmp/stats.out" "$tmp/stats.err")"
else ok "gcstats-fields"; fi
if ! grep -Eq "^stats: pauses [0-9]+: p50 $num ms, p99 $num ms, max $num ms; assist $num ms; allocation rate $num MB/s$" "$tmp/stats.err" ||
   ! grep -q '^stats: pause histogram$' "$tmp/stats.err" ||
   ! grep -Eq '^  \[ *[0-9]+, *[0-9]+\) us +[0-9]+  #+$' "$tmp/stats.err"; then
  fail "stats-summary:"; cat "$tmp/stats.err"
else ok "stats-summary"; fi

# --- profiles ---------------------------------------------------------------------------
if ! command -v go >/dev/null; then
  fail "go is not installed (tools/setup installs golang-go): the profiles cannot be checked"
  echo "$fails failed"; exit 1
fi
# The function on the first row of a pprof -top table.
top_of() { awk 'found { print $NF; exit } / flat%/ { found = 1 }'; }

"$bin" --cpuprofile "$tmp/cpu.prof" "$hot" >"$tmp/hot.out" 2>&1 || fail "cpuprofile run: $(cat "$tmp/hot.out")"
go tool pprof -top -nodefraction=0 "$tmp/cpu.prof" >"$tmp/cpu.top" 2>&1
t=$(top_of <"$tmp/cpu.top")
if [[ "$t" != hot ]] || ! grep -q 'Type: cpu' "$tmp/cpu.top"; then
  fail "cpuprofile go pprof: top is '$t', want hot:"; cat "$tmp/cpu.top"
else ok "cpuprofile-go-pprof"; fi
if ! grep -q '<script>' "$tmp/cpu.top"; then
  fail "cpuprofile frames: no <script> frame:"; cat "$tmp/cpu.top"
else ok "cpuprofile-script-frame"; fi
# A native's own frame: a script that spends nearly all its time inside upper() (in the
# script above the native's share is a few samples, which may be none under a sanitizer).
"$bin" --cpuprofile "$tmp/native.prof" -e 'var big = "a".repeat(100000); var n = 0;
for (var k = 0; k < 1000; k = k + 1) n = n + big.upper().len(); print n;' >"$tmp/native.out" 2>&1 ||
  fail "cpuprofile native run: $(cat "$tmp/native.out")"
go tool pprof -top -nodefraction=0 "$tmp/native.prof" >"$tmp/native.top" 2>&1
if [[ "$(top_of <"$tmp/native.top")" != "upper>" ]] || ! grep -q '<native upper>' "$tmp/native.top"; then
  fail "cpuprofile frames: <native upper> is not on top:"; cat "$tmp/native.top"
else ok "cpuprofile-native-frame"; fi
# Files and lines: hot is on lines 4-8 of the script.
go tool pprof -top -lines "$tmp/cpu.prof" >"$tmp/cpu.lines" 2>&1
if ! grep -Eq ' hot .*prof_hot\.lox:[0-9]+$' "$tmp/cpu.lines"; then
  fail "cpuprofile lines: no 'hot FILE:LINE' row:"; cat "$tmp/cpu.lines"
else ok "cpuprofile-file-lines"; fi
# The leaf frame's line is the sampled one: hot's loop (line 6), not its first line (5).
row=$(awk 'found { print $(NF-1), $NF; exit } / flat%/ { found = 1 }' "$tmp/cpu.lines")
if [[ "$row" != "hot "*prof_hot.lox:6 ]]; then
  fail "cpuprofile sampled line: first row '$row', want hot at prof_hot.lox:6:"; cat "$tmp/cpu.lines"
else ok "cpuprofile-sampled-line"; fi
"$bin" prof top "$tmp/cpu.prof" >"$tmp/cpu.own" 2>&1
t=$(top_of <"$tmp/cpu.own")
if [[ "$t" != hot ]]; then fail "spindle prof top: top is '$t':"; cat "$tmp/cpu.own"; else ok "spindle-prof-top"; fi
"$bin" prof svg "$tmp/cpu.prof" >"$tmp/cpu.svg" 2>&1
if ! head -1 "$tmp/cpu.svg" | grep -q '^<?xml' || ! grep -q '<svg ' "$tmp/cpu.svg" ||
   ! grep -q '<title>hot (' "$tmp/cpu.svg" || ! tail -1 "$tmp/cpu.svg" | grep -q '^</svg>$'; then
  fail "spindle prof svg:"; head -c 2000 "$tmp/cpu.svg"
else ok "spindle-prof-svg"; fi

"$bin" --memprofile "$tmp/mem.prof" "$alloc" >"$tmp/alloc.out" 2>&1 || fail "memprofile run: $(cat "$tmp/alloc.out")"
for index in alloc_space inuse_space; do
  go tool pprof -top -sample_index=$index "$tmp/mem.prof" >"$tmp/mem.$index" 2>&1
  t=$(top_of <"$tmp/mem.$index")
  if [[ "$t" != build ]] || ! grep -q "Type: $index" "$tmp/mem.$index"; then
    fail "memprofile $index: top is '$t', want build:"; cat "$tmp/mem.$index"
  else ok "memprofile-$index"; fi
done
# The live tree (2^17 nodes, about 16 samples) is in use at exit; the 100 dropped trees
# (2^13 nodes each) are not.
alloc_mb=$(awk '/ flat%/ { getline; print $1; exit }' "$tmp/mem.alloc_space")
inuse_mb=$(awk '/ flat%/ { getline; print $1; exit }' "$tmp/mem.inuse_space")
if [[ "$alloc_mb" != *MB || "$inuse_mb" != *[MkK]B ]] ||
   ! awk -v a="${alloc_mb%MB}" -v u="$inuse_mb" 'BEGIN { v = u + 0; if (u ~ /kB$/) v /= 1024; exit !(v > 0 && v < a / 4) }'; then
  fail "memprofile in use: alloc $alloc_mb, in use $inuse_mb (want 0 < in use < alloc / 4)"
else ok "memprofile-inuse"; fi

# Errors: a file that cannot be written, a file that is not a profile.
"$bin" --cpuprofile "$tmp/no/such/dir/x.prof" -e 'print 1;' >"$tmp/err.out" 2>&1; rc=$?
if [[ $rc -ne 74 ]] || ! grep -q 'cpuprofile: cannot write' "$tmp/err.out"; then
  fail "cpuprofile unwritable: rc $rc: $(cat "$tmp/err.out")"; else ok "cpuprofile-unwritable"; fi
echo 'not a profile' >"$tmp/junk.prof"
"$bin" prof top "$tmp/junk.prof" >"$tmp/err.out" 2>&1; rc=$?
if [[ $rc -ne 65 ]] || ! grep -q 'not a profile.proto' "$tmp/err.out"; then
  fail "prof top junk: rc $rc: $(cat "$tmp/err.out")"; else ok "prof-top-junk"; fi

exit $((fails > 0))
