#!/usr/bin/env bash
# Runs the scheduler benchmarks of Spindle (C++, -c opt) and Go 1.19 side by side,
# REPS times each, and prints the median ns/op of each and the ratio ours/Go.
# Usage: benchmarks/sched_compare.sh [REPS]   (default 5). Fully offline.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bazel build -c opt //benchmarks:sched_bench >/dev/null 2>&1
bin=bazel-bin/benchmarks/sched_bench
"$bin" --benchmark_repetitions="$reps" --benchmark_filter='-ParkedMillion' \
  --benchmark_format=json 2>/dev/null >"$tmp/ours.0.json"
# RSS: a fresh process per repetition (a second run in one process reuses the Gs).
for i in $(seq 1 "$reps"); do
  "$bin" --benchmark_filter=ParkedMillion --benchmark_format=json 2>/dev/null >"$tmp/ours.$i.json"
done

export GOFLAGS=-mod=mod GOPROXY=off GOCACHE=/tmp/spindle-gocache GO111MODULE=on
(cd benchmarks/go && go test -run '^$' -bench 'PingPong|SpawnJoin|Buffered|STWPause' -count "$reps" -benchtime 1s) >"$tmp/go.txt"
# RSS: a fresh process per repetition, one iteration each (as for Spindle).
for i in $(seq 1 "$reps"); do
  (cd benchmarks/go && go test -run '^$' -bench ParkedMillion -count 1 -benchtime 1x) >>"$tmp/go.txt"
done

python3 - "$tmp/go.txt" "$tmp"/ours.*.json <<'PY'
import glob, json, re, statistics, sys
ours, go = {}, {}
for path in sys.argv[2:]:
    for r in json.load(open(path))['benchmarks']:
        if r.get('run_type') != 'iteration': continue
        base = r['name'].split('/')[0].replace('BM_', '')
        scale = {'ns': 1, 'us': 1e3, 'ms': 1e6}[r['time_unit']]
        ours.setdefault(base, {}).setdefault('ns/op', []).append(r['real_time'] * scale)
        for k in ('rss_MiB', 'bytes_per_G', 'pause_p50_us', 'pause_p99_us', 'pause_max_us'):
            if k in r: ours[base].setdefault(k, []).append(r[k])
for line in open(sys.argv[1]):
    m = re.match(r'Benchmark(\w+?)(-\d+)?\s+\d+\s+(.*)', line)
    if not m: continue
    fields = m.group(3).split()
    d = go.setdefault(m.group(1), {})
    for v, unit in zip(fields[::2], fields[1::2]):
        d.setdefault(unit, []).append(float(v))
print(f"{'benchmark':<16}{'metric':<14}{'spindle':>14}{'go 1.19':>14}{'ratio':>8}")
for name in ['PingPong', 'SpawnJoin', 'Buffered', 'STWPause', 'ParkedMillion']:
    for metric in ['ns/op', 'rss_MiB', 'bytes_per_G', 'pause_p50_us', 'pause_p99_us', 'pause_max_us']:
        a = ours.get(name, {}).get(metric); b = go.get(name, {}).get(metric)
        if not a and not b: continue
        if name == 'ParkedMillion' and metric == 'ns/op': continue
        ma = statistics.median(a) if a else float('nan'); mb = statistics.median(b) if b else float('nan')
        print(f"{name:<16}{metric:<14}{ma:>14.1f}{mb:>14.1f}{ma/mb if b else float('nan'):>8.2f}")
PY
