#!/usr/bin/env python3
"""Runs each benchmark in benchmarks/lox/ on Spindle and on Lua 5.4, side by side.

Usage: benchmarks/lox/run.py [-n RUNS] [NAME...]

For each NAME.lox / NAME.lua pair: runs both RUNS times (default 5), alternating, checks
that they print the same output, and prints the median wall time of each and the ratio
Spindle/Lua (below 1.0 means Spindle is faster). Spindle is built with -c opt by ./spindle.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def timed(cmd):
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    return elapsed, proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each program (median)")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    names = args.names or sorted(f[:-4] for f in os.listdir(HERE) if f.endswith(".lox"))

    subprocess.run([os.path.join(ROOT, "tools", "setup"), "bench"], check=True)
    spindle = os.path.join(ROOT, "spindle")
    ok = subprocess.run([spindle, "--version"], capture_output=True)
    if ok.returncode != 0:
        sys.exit("run.py: ./spindle does not build or run: " + ok.stderr.decode())

    print(f"{'benchmark':<18}{'spindle s':>12}{'lua5.4 s':>12}{'ratio':>8}")
    failed = False
    for name in names:
        lox, lua = os.path.join(HERE, name + ".lox"), os.path.join(HERE, name + ".lua")
        times = {"spindle": [], "lua": []}
        outputs = {}
        for _ in range(args.n):
            for key, cmd in (("spindle", [spindle, lox]), ("lua", ["lua5.4", lua])):
                elapsed, proc = timed(cmd)
                if proc.returncode != 0:
                    print(f"{name}: {key} exited {proc.returncode}: {proc.stderr.strip()}")
                    failed = True
                    break
                times[key].append(elapsed)
                outputs[key] = proc.stdout
        if len(times["spindle"]) < args.n or len(times["lua"]) < args.n:
            continue
        if outputs["spindle"] != outputs["lua"]:
            print(f"{name}: outputs differ: spindle {outputs['spindle']!r} lua {outputs['lua']!r}")
            failed = True
        s, l = statistics.median(times["spindle"]), statistics.median(times["lua"])
        print(f"{name:<18}{s:>12.3f}{l:>12.3f}{s / l:>8.2f}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
