#!/usr/bin/env python3
"""Runs each benchmark in benchmarks/lox/ on Spindle, Lua 5.4 and LuaJIT's interpreter, side by side.

Usage: benchmarks/lox/run.py [-n RUNS] [--no-luajit] [NAME...]

For each NAME.lox / NAME.lua pair: runs Spindle, `lua5.4` and `luajit -joff` (LuaJIT 2.1
with its JIT off: its interpreter) RUNS times each (default 5), alternating, checks that
they print the same output, and prints the median CPU time (user + system, of the child)
of each and the ratios Spindle/Lua and Spindle/LuaJIT (below 1.0 means Spindle is
faster), then the geometric mean of each ratio column. The .lua twins are written in the
language both Luas run (no `//`, no bit operators). LuaJIT formats %g by its own code,
which rounds a tie the other way (fib(35) = 9227465 prints 9.22747e+06, glibc gives
9.22746e+06), so its output is compared number by number with a relative tolerance of
1e-5, the rest exactly. Spindle is built once with -c opt, then its binary
(bazel-opt-bin/vm/cli/spindle) is timed directly: the ./spindle wrapper would re-check
the build on every run and be timed with it.
"""
import argparse
import math
import os
import re
import shutil
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


NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def same_output(a, b):
    """a and b equal, numbers within a relative 1e-5 of each other (LuaJIT's %g)."""
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return False
    return all(math.isclose(float(x), float(y), rel_tol=1e-5)
               for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)))


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each program (median)")
    parser.add_argument("--no-luajit", action="store_true", help="leave out the luajit -joff column")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    names = args.names or sorted(f[:-4] for f in os.listdir(HERE) if f.endswith(".lox"))

    subprocess.run([os.path.join(ROOT, "tools", "setup"), "bench"], check=True)
    # ./spindle builds the opt binary (and installs what is missing); time the binary itself.
    ok = subprocess.run([os.path.join(ROOT, "spindle"), "--version"], capture_output=True)
    if ok.returncode != 0:
        sys.exit("run.py: ./spindle does not build or run: " + ok.stderr.decode())
    spindle = os.path.join(ROOT, "bazel-opt-bin", "vm", "cli", "spindle")

    runners = [("spindle", lambda lox, lua: [spindle, lox]), ("lua", lambda lox, lua: ["lua5.4", lua])]
    if not args.no_luajit:
        if shutil.which("luajit") is None:
            sys.exit("run.py: luajit is not installed (tools/setup bench installs it; --no-luajit leaves it out)")
        runners.append(("luajit", lambda lox, lua: ["luajit", "-joff", lua]))
    header = f"{'benchmark':<18}{'spindle cpu s':>14}{'lua5.4 cpu s':>14}{'ratio':>8}"
    if not args.no_luajit:
        header += f"{'luajit -joff s':>16}{'ratio':>8}"
    print(header)
    failed = False
    ratios = {"lua": [], "luajit": []}
    for name in names:
        lox, lua = os.path.join(HERE, name + ".lox"), os.path.join(HERE, name + ".lua")
        times = {key: [] for key, _ in runners}
        outputs = {}
        for _ in range(args.n):
            for key, cmd in runners:
                elapsed, proc = timed(cmd(lox, lua))
                if proc.returncode != 0:
                    print(f"{name}: {key} exited {proc.returncode}: {proc.stderr.strip()}")
                    failed = True
                    break
                times[key].append(elapsed)
                outputs[key] = proc.stdout
        if any(len(t) < args.n for t in times.values()):
            continue
        if outputs["spindle"] != outputs["lua"]:
            print(f"{name}: outputs differ: spindle {outputs['spindle']!r} lua {outputs['lua']!r}")
            failed = True
        if "luajit" in outputs and not same_output(outputs["luajit"], outputs["lua"]):
            print(f"{name}: outputs differ: luajit {outputs['luajit']!r} lua {outputs['lua']!r}")
            failed = True
        s, l = statistics.median(times["spindle"]), statistics.median(times["lua"])
        ratios["lua"].append(s / l)
        line = f"{name:<18}{s:>14.3f}{l:>14.3f}{s / l:>8.2f}"
        if "luajit" in times:
            j = statistics.median(times["luajit"])
            ratios["luajit"].append(s / j)
            line += f"{j:>16.3f}{s / j:>8.2f}"
        print(line)
    line = f"{'geomean':<18}{'':>14}{'':>14}{geomean(ratios['lua']):>8.2f}"
    if not args.no_luajit:
        line += f"{'':>16}{geomean(ratios['luajit']):>8.2f}"
    print(line)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
