#!/usr/bin/env python3
"""Start-up cost: `spindle -e 'print 1;'` beside `lua5.4 -e 'print(1)'`, many runs.

Usage: benchmarks/startup.py [-n RUNS] [--spindle BIN ...] [--lua BIN]

Runs each command RUNS times (default 200), interleaved (so machine load falls on all of
them alike), and prints min / median / max of wall time, CPU time (user + system, from
wait4's rusage) and page faults (minor + major) per command, and the ratio of medians
to the last command (lua5.4). Several --spindle binaries (e.g. before and after a change)
are measured in the same run. Build the binary with `bazel build -c opt //vm/cli:spindle`
and pass bazel-bin/vm/cli/spindle (the default), not the ./spindle wrapper.
"""
import argparse
import os
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_once(argv):
    """Runs argv with stdout/stderr to /dev/null; returns (wall s, cpu s, page faults)."""
    # posix_spawn (vfork-like): the child does not copy this interpreter's page tables,
    # so its CPU time and page faults are the command's own.
    null = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_DUP2, 1, 2)]
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=null)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {os.waitstatus_to_exitcode(status)}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_minflt + ru.ru_majflt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="runs of each command")
    parser.add_argument("--spindle", action="append", help="spindle binary (repeatable)")
    parser.add_argument("--lua", default="lua5.4")
    args = parser.parse_args()
    bins = args.spindle or [os.path.join(ROOT, "bazel-bin", "vm", "cli", "spindle")]
    cmds = [(b, [b, "-e", "print 1;"]) for b in bins] + [(args.lua, [args.lua, "-e", "print(1)"])]
    samples = {name: [] for name, _ in cmds}
    for _ in range(args.n):
        for name, argv in cmds:
            samples[name].append(run_once(argv))

    def stats(xs):
        return min(xs), statistics.median(xs), max(xs)

    ref = samples[cmds[-1][0]]
    ref_wall, ref_cpu = statistics.median(s[0] for s in ref), statistics.median(s[1] for s in ref)
    print(f"{args.n} runs each, interleaved; ms as min / median / max")
    for name, _ in cmds:
        xs = samples[name]
        w, c, f = stats([s[0] * 1e3 for s in xs]), stats([s[1] * 1e3 for s in xs]), stats([s[2] for s in xs])
        mw, mc = statistics.median(s[0] for s in xs), statistics.median(s[1] for s in xs)
        print(f"{name}\n  wall {w[0]:.2f} / {w[1]:.2f} / {w[2]:.2f}   cpu {c[0]:.2f} / {c[1]:.2f} / {c[2]:.2f}"
              f"   faults {f[0]} / {f[1]:.0f} / {f[2]}   ratio wall {mw / ref_wall:.2f} cpu {mc / max(ref_cpu, 1e-9):.2f}")


if __name__ == "__main__":
    main()
