"""The parser and the connection tracker alone, in-process: lines per second, with no file
reading and no database, so a change to parsing.py, messages.py or sessions.py shows up here.

    .venv/bin/python bench/bench_parse.py [--lines 300000] [--runs 5] [--against DIR] [--instructions]

It generates one log (generate_authlog.py), then times `Parser.parse_line` + `Tracker.feed` over
all of it, `--runs` times, alternating with the checkout at `--against` (for example a
`git worktree add /tmp/alpha-before <commit>`) when given, so both are measured on the same
machine in the same minutes. Reports the median seconds, lines per second and the ratio.
`--instructions` also counts the instructions of one run of each under valgrind's callgrind:
repeatable whatever else the machine is doing (use fewer lines: it runs ~50x slower).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

from common import BENCH_DIR, PROJECT_DIR, PYTHON

# Run in a child process with the checkout to time first on sys.path.
TIMER = r"""
import sys, time
from datetime import UTC, datetime
sys.path.insert(0, sys.argv[1])
from collector.parsing import MALFORMED, Parser
from collector.sessions import Tracker
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
parser, tracker = Parser(UTC, now=datetime.now(UTC)), Tracker()
start = time.perf_counter()
for line in lines:
    event = parser.parse_line(line)
    if event is not None and event is not MALFORMED:
        tracker.feed(event)
tally = tracker.take_tally()
seconds = time.perf_counter() - start
print(seconds, sum(c[0] for c in tally.days.values()))
"""


def timed(tree: str, log: str) -> tuple[float, int]:
    out = subprocess.run([PYTHON, "-c", TIMER, tree, log], capture_output=True, text=True, check=True)
    seconds, sessions = out.stdout.split()
    return float(seconds), int(sessions)


def instructions(tree: str, log: str) -> int:
    """Instructions executed by one timed run (the whole child process, start-up included)."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", PYTHON, "-c", TIMER, tree, log],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = re.search(r"Collected : (\d+)", out.stderr)
    return int(match[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--against", help="another checkout of the project to time in the same run")
    ap.add_argument("--instructions", action="store_true", help="also count instructions (callgrind)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "auth.log")
        subprocess.run(
            [PYTHON, os.path.join(BENCH_DIR, "generate_authlog.py"), "--lines", str(args.lines),
             "--seed", str(args.seed), "--out", log],
            check=True, capture_output=True,
        )  # fmt: skip
        trees = {"this": PROJECT_DIR}
        if args.against:
            trees["against"] = os.path.abspath(args.against)
        results: dict[str, list[float]] = {name: [] for name in trees}
        sessions: dict[str, int] = {}
        for _ in range(args.runs):
            for name, tree in trees.items():
                seconds, sessions[name] = timed(tree, log)
                results[name].append(seconds)
        counted = {name: instructions(tree, log) for name, tree in trees.items()} if args.instructions else {}
    report = {"lines": args.lines, "runs": args.runs}
    for name, runs in results.items():
        median = statistics.median(runs)
        report[name] = {"tree": trees[name], "median_s": round(median, 3), "lines_per_s": round(args.lines / median),
                        "runs_s": [round(r, 3) for r in runs], "sessions": sessions[name]}  # fmt: skip
        if name in counted:
            report[name]["instructions"] = counted[name]
    if args.against:
        report["this_over_against"] = round(report["this"]["median_s"] / report["against"]["median_s"], 3)
        if counted:
            report["instructions_this_over_against"] = round(counted["this"] / counted["against"], 4)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
