"""One `Recorder.commit` with many connections open: does its cost grow with how many are open?

    .venv/bin/python bench/bench_commit.py [--open 40 4000] [--commits 50] [--against DIR]
                                           [--database-url postgres://...]

For each number of open connections, a child process migrates a fresh SQLite database (or the
empty database `--database-url` names, flushed first), opens that many connections (one
`Invalid user` line each, in the same second so none is evicted) and commits them, untimed.
Then it times `--commits` commits that each follow one more line of one connection (a
`Failed password`), as a heavy attack's follow mode commits a few lines at a time. Reports the
median and the 90th percentile in ms per commit. With `--against` (for example a
`git worktree add /tmp/state-before main`), that checkout is timed the same way in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from common import PROJECT_DIR, PYTHON

# Run in a child process with the checkout to time first on sys.path.
TIMER = r"""
import json, os, sys, time
from datetime import UTC, datetime, timedelta
tree, data_dir, count, commits = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, tree)
os.environ.update(DJANGO_SETTINGS_MODULE="alphaproject.settings", ALPHA_DATA_DIR=data_dir,
                  SECRET_KEY="bench-only", ALPHA_ROLE="agent", TIME_ZONE="UTC", DEBUG="0")
import django
django.setup()
from django.core.management import call_command
from django.db import connection
if connection.vendor != "sqlite":
    call_command("flush", interactive=False, verbosity=0)
call_command("migrate", verbosity=0)
from collector.models import LogSource
from collector.parsing import Parser
from collector.recording import Recorder

at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
stamp = f"{at:%b} {at.day:2d} {at:%H:%M:%S}"
parser = Parser(UTC, now=datetime.now(UTC))
def line(pid, message):
    return parser.parse_line(f"{stamp} web1 sshd[{pid}]: {message}")
source = LogSource.objects.create(path="bench", fingerprint="")
recorder = Recorder()
for n in range(count):
    recorder.tracker.feed(line(1000 + n, f"Invalid user admin from 198.51.100.{n % 250} port {n}"))
recorder.commit([source])
times = []
for r in range(commits):
    n = r % count
    recorder.tracker.feed(line(1000 + n, f"Failed password for invalid user admin from 198.51.100.{n % 250} port {n} ssh2"))
    start = time.perf_counter()
    recorder.commit([source])
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def timed(tree: str, count: int, commits: int, database_url: str | None) -> list[float]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    with tempfile.TemporaryDirectory() as data_dir:
        out = subprocess.run(
            [PYTHON, "-c", TIMER, tree, data_dir, str(count), str(commits)],
            capture_output=True, text=True, env=env, cwd=tree,
        )  # fmt: skip
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"the timer failed in {tree}")
    return json.loads(out.stdout.splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--open", type=int, nargs="+", default=[40, 4000], help="open connections to time")
    ap.add_argument("--commits", type=int, default=50, help="timed commits per run")
    ap.add_argument("--runs", type=int, default=1, help="child processes per tree and size, alternating")
    ap.add_argument("--against", help="another checkout of the project to time in the same run")
    ap.add_argument("--database-url", help="an empty PostgreSQL database to use instead of SQLite")
    args = ap.parse_args()
    trees = {"this": PROJECT_DIR}
    if args.against:
        trees["against"] = os.path.abspath(args.against)
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.runs):
        for count in args.open:
            for name, tree in trees.items():
                times = timed(tree, count, args.commits, args.database_url)
                results.setdefault((name, count), []).extend(times)
    report: dict = {"commits": args.commits, "runs": args.runs, "database": args.database_url or "sqlite"}
    for (name, count), times in results.items():
        ms = sorted(t * 1000 for t in times)
        report.setdefault(name, {"tree": trees[name]})[f"open_{count}"] = {
            "median_ms": round(statistics.median(ms), 2),
            "p90_ms": round(ms[int(len(ms) * 0.9)], 2),
        }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
