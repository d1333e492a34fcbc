#!/usr/bin/env python3
"""Runs `bazel test` and counts test cases across every test binary.

Usage: tools/run_tests.py [--label NAME] [bazel test args...] [-- targets...]

Each doctest binary prints "[doctest] test cases: T | P passed | F failed | S skipped";
those counts are summed. A test target that printed no doctest summary (a shell test,
or a binary that crashed before its summary) counts as one case, passed or failed by
its Bazel status. The last line printed is "N passed, N failed". Exit status is
non-zero if any case failed or the build failed.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from urllib.parse import unquote, urlparse

SUMMARY = re.compile(
    r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")


def main(argv):
    label = None
    if argv[:1] == ["--label"]:
        label, argv = argv[1], argv[2:]
    if "--" in argv:
        i = argv.index("--")
        flags, targets = argv[:i], argv[i + 1:]
    else:
        flags, targets = argv, ["//..."]

    with tempfile.TemporaryDirectory() as tmp:
        bep = os.path.join(tmp, "bep.json")
        cmd = ["bazel", "test", "--build_event_json_file=" + bep] + flags + ["--"] + targets
        rc = subprocess.call(cmd)
        results = read_results(bep) if os.path.exists(bep) else []

    passed = failed = 0
    failures = []
    for target, status, log in results:
        counts = doctest_counts(log)
        ok = status in ("PASSED", "FLAKY")
        if counts is None:
            passed, failed = passed + ok, failed + (not ok)
        else:
            passed, failed = passed + counts[0], failed + counts[1]
            if not ok and counts[1] == 0:  # crashed or timed out after its summary
                failed += 1
        if not ok:
            failures.append(f"{target}: {status}")

    prefix = f"{label}: " if label else ""
    for f in failures:
        print(f"{prefix}FAILED {f}")
    if rc != 0 and not failures:
        # The build itself failed (or no test ran): that is a failure too.
        print(f"{prefix}bazel test exited {rc} before any test failed", file=sys.stderr)
        failed += 1
    if passed + failed == 0:
        print(f"{prefix}no test was run", file=sys.stderr)
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def read_results(path):
    """(target, status, log path) for each test result in a build-event JSON file."""
    out = []
    with open(path) as f:
        for line in f:
            event = json.loads(line)
            test_id = event.get("id", {}).get("testResult")
            result = event.get("testResult")
            if not test_id or result is None:
                continue
            log = None
            for output in result.get("testActionOutput", []):
                if output.get("name") == "test.log":
                    log = unquote(urlparse(output.get("uri", "")).path)
            out.append((test_id["label"], result.get("status", "FAILED"), log))
    return out


def doctest_counts(log):
    """(passed, failed) from the last doctest summary in a test log, or None."""
    if not log or not os.path.exists(log):
        return None
    found = None
    with open(log, errors="replace") as f:
        for line in f:
            m = SUMMARY.search(line)
            if m:
                found = (int(m.group(2)), int(m.group(3)))
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
