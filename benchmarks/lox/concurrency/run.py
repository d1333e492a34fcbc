#!/usr/bin/env python3
"""Runs the concurrency benchmarks in Lox on Spindle and their Go counterparts, side by side.

Usage: benchmarks/lox/concurrency/run.py [-n RUNS] [--procs N,M] [NAME...]

For each NAME.lox here and the same program in benchmarks/go/loxconc (Go 1.19, built
offline): runs both RUNS times (default 5) at each Ps count (default 1 and 2: --procs for
Spindle, GOMAXPROCS for Go), alternating, checks that they print the same line, and prints
the median wall time of each, the ratio Spindle/Go, and each one's speed-up from the
first to the last Ps count. Spindle is built with -c opt by ./spindle.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
GO_NAMES = {"ping_pong": "pingpong", "fan_in": "fanin", "par_alloc": "paralloc"}


def timed(cmd, env=None):
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each program (median)")
    parser.add_argument("--procs", default="1,2", help="comma-separated Ps counts")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    names = args.names or sorted(f[:-4] for f in os.listdir(HERE) if f.endswith(".lox"))
    procs = [int(p) for p in args.procs.split(",")]

    subprocess.run([os.path.join(ROOT, "tools", "setup"), "bench"], check=True)
    # ./spindle builds the CLI with -c opt; time the binary itself (the wrapper re-checks
    # the build on every call, which would add seconds to each run).
    ok = subprocess.run([os.path.join(ROOT, "spindle"), "--version"], capture_output=True)
    if ok.returncode != 0:
        sys.exit("run.py: ./spindle does not build or run: " + ok.stderr.decode())
    spindle = os.path.join(ROOT, "bazel-opt-bin", "vm", "cli", "spindle")
    gobin = os.path.join(tempfile.mkdtemp(), "loxconc")
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GO111MODULE="on",
               GOCACHE="/tmp/spindle-gocache")
    subprocess.run(["go", "build", "-o", gobin, "./loxconc"], cwd=os.path.join(ROOT, "benchmarks", "go"),
                   check=True, env=env)

    print(f"{'benchmark':<12}{'procs':>6}{'spindle s':>11}{'go s':>9}{'ratio':>8}")
    failed = False
    medians = {}
    for name in names:
        for p in procs:
            times = {"spindle": [], "go": []}
            outputs = {}
            goenv = dict(os.environ, GOMAXPROCS=str(p))
            for _ in range(args.n):
                for key, cmd, e in (("spindle", [spindle, "--procs", str(p), os.path.join(HERE, name + ".lox")], None),
                                    ("go", [gobin, GO_NAMES[name]], goenv)):
                    elapsed, proc = timed(cmd, e)
                    if proc.returncode != 0:
                        print(f"{name}: {key} exited {proc.returncode}: {proc.stderr.strip()}")
                        failed = True
                        break
                    times[key].append(elapsed)
                    outputs[key] = proc.stdout
            if len(times["spindle"]) < args.n or len(times["go"]) < args.n:
                continue
            # Lox prints big numbers in %g form: compare numerically.
            if abs(float(outputs["spindle"]) - float(outputs["go"])) > 1e-6 * abs(float(outputs["go"])):
                print(f"{name}: outputs differ: spindle {outputs['spindle']!r} go {outputs['go']!r}")
                failed = True
            s, g = statistics.median(times["spindle"]), statistics.median(times["go"])
            medians[(name, p)] = (s, g)
            print(f"{name:<12}{p:>6}{s:>11.3f}{g:>9.3f}{s / g:>8.2f}")
        if (name, procs[0]) in medians and (name, procs[-1]) in medians and len(procs) > 1:
            s0, g0 = medians[(name, procs[0])]
            s1, g1 = medians[(name, procs[-1])]
            print(f"{name:<12} speed-up {procs[0]}->{procs[-1]} Ps: spindle {s0 / s1:.2f}x, go {g0 / g1:.2f}x")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
