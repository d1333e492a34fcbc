#!/usr/bin/env python3
"""Runs each benchmark in benchmarks/lox/ on Spindle and on Lua 5.4, side by side.

Usage: benchmarks/lox/run.py [-n RUNS] [NAME...]

For each NAME.lox / NAME.lua pair: runs both RUNS times (default 5), alternating, checks
that they print the same output, and prints the median CPU time (user + system, of the
child) of each and the ratio Spindle/Lua (below 1.0 means Spindle is faster). Spindle is
built once with -c opt, then its binary (bazel-opt-bin/vm/cli/spindle) is timed directly:
the ./spindle wrapper would re-check the build on every run and be timed with it.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def timed(cmd):
    """Runs cmd; returns (CPU seconds of the child, user + system, and the process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each program (median)")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    names = args.names or sorted(f[:-4] for f in os.listdir(HERE) if f.endswith(".lox"))

    subprocess.run([os.path.join(ROOT, "tools", "setup"), "bench"], check=True)
    # ./spindle builds the opt binary (and installs what is missing); time the binary itself.
    ok = subprocess.run([os.path.join(ROOT, "spindle"), "--version"], capture_output=True)
    if ok.returncode != 0:
        sys.exit("run.py: ./spindle does not build or run: " + ok.stderr.decode())
    spindle = os.path.join(ROOT, "bazel-opt-bin", "vm", "cli", "spindle")

    print(f"{'benchmark':<18}{'spindle cpu s':>14}{'lua5.4 cpu s':>14}{'ratio':>8}")
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
        print(f"{name:<18}{s:>14.3f}{l:>14.3f}{s / l:>8.2f}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
