"""The dashboard on a big fleet: 1,000 hosts x 90 days, timed in-process with Django's test Client.

    .venv/bin/python bench/bench_dashboard.py [--hosts 1000] [--days 90] [--sources 20]
        [--runs 20] [--other-runs 5] [--postgres | --both] [--host-major] [--analyze-sqlite] [--keep]

Per backend, in a child process of its own (Django is set up once per process):
  1. A fresh database (SQLite file in a temp dir under bench/out/; with --postgres / --both a
     fresh database postgres://postgres@127.0.0.1:5432/alpha_bench_dash_*, dropped at the end),
     migrated, DEBUG off, TIME_ZONE=UTC.
  2. Seeded with raw executemany (the ORM's bulk_create is 5x slower here and times nothing of
     interest): --hosts Host rows in mixed states; one HostDay per host and day for --days days
     ending today (Pareto-skewed per-host volume, a top_users list of 10); and per host and day
     about --sources HostSource rows (5 to 4x that, skewed), drawn from a Zipf-weighted pool of
     attacker addresses shared by the fleet (the same botnets hit every host) plus a few
     "real user" addresses per host that log in, some of which also fail elsewhere. PostgreSQL
     gets VACUUM ANALYZE (autovacuum would); SQLite no ANALYZE, as in production, unless
     --analyze-sqlite.
     Rows are written day by day for the whole fleet, as polling writes them (so one day's rows
     sit together on disk); --host-major writes each host's days at once instead, as when a
     whole fleet is backfilled in one go: the worst layout for reading a range of days.
  3. A logged-in Client times each URL after 2 warm-up requests: the overview HTML and its two
     JSON endpoints on the default range (the last 14 days) --runs times, then --other-runs
     times each: the same on 90 days, and the other pages and their JSON. Reported per URL: p50 and max in ms, queries per
     request, response size. Target (MET / MISSED, never changes the exit code): the
     overview's HTML and JSON under 300 ms (max of the runs) on the default range.
  4. Correctness (exit 1 if wrong): the overview's totals and both charts' per-day sums equal
     what the generator summed while seeding.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from common import OUT_DIR, PYTHON, create_postgres, drop_postgres  # noqa: E402

TARGET_MS = 300.0
USERS = [
    "root", "admin", "test", "user", "ubuntu", "oracle", "postgres", "guest", "git", "deploy",
    "ftp", "pi", "support", "www-data", "mysql", "nagios", "jenkins", "hadoop", "ec2-user", "ansible",
    "<img src=x onerror=alert(1)>",
]  # fmt: skip
POOL = 200_000  # attacker addresses the fleet shares


# --------------------------------------------------------------------------------------------
# The child: seed, then time
# --------------------------------------------------------------------------------------------


def setup_django(data_dir: str, database_url: str) -> None:
    os.environ.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(40),
        ALLOWED_HOSTS="testserver",
        ALPHA_DATA_DIR=data_dir,
        TIME_ZONE="UTC",
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="alphaproject.settings",
        ALPHA_ROLE="central",
    )
    sys.path.insert(0, PROJECT_DIR)
    os.makedirs(os.path.join(data_dir, "static"), exist_ok=True)  # STATIC_ROOT, never collected here
    import django

    django.setup()


def address(rank: int) -> str:
    return f"{(rank >> 16) % 223 + 1}.{(rank >> 8) & 255}.{rank & 255}.{(rank * 7) % 250 + 3}"


def seed(args, today: date) -> dict:
    """Writes the fleet and returns what the checks compare against: per-day sessions,
    accepted and failed attempts summed over hosts, and each day's distinct addresses."""
    from django.apps import apps as django_apps
    from django.db import connection, transaction

    from inventory_app.models import Host, HostDay, HostSource

    rng = random.Random(args.seed)
    ops = connection.ops
    now = datetime.now(UTC)
    states = ["ok"] * 90 + ["stale"] * 5 + ["down"] * 4 + ["never polled"]
    hosts = [
        Host(name=f"host{n:04}", url=f"http://10.0.{n // 250}.{n % 250}:8001", token="t" * 32,
             state=states[n % len(states)], last_success_at=now - timedelta(minutes=n % 7),
             agent_version="1.0", unread_bytes=0, last_event_at=now)
        for n in range(args.hosts)
    ]  # fmt: skip
    Host.objects.bulk_create(hosts, batch_size=1000)
    ids = list(Host.objects.order_by("name").values_list("pk", flat=True))
    days = [today - timedelta(days=i) for i in range(args.days - 1, -1, -1)]
    cumulative = list(itertools.accumulate(1 / (r + 1) ** 1.1 for r in range(POOL)))
    truth = {d: {"sessions": 0, "accepted": 0, "failed_attempts": 0, "ips": set()} for d in days}

    day_table, source_table = HostDay._meta.db_table, HostSource._meta.db_table
    day_sql = (
        f'INSERT INTO "{day_table}" (host_id, day, sessions, accepted, failed_attempts, failed_sessions, '
        "invalid_user_sessions, preauth_only, unique_sources, stored_sources, top_users, polled_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    source_sql = (
        f'INSERT INTO "{source_table}" (host_id, day, ip, sessions, failed_attempts, accepted, users, '
        "first_seen, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    # Each host's volume (a few hosts far busier than most) and its real users' addresses.
    profiles = [
        (host_id, min(rng.paretovariate(1.3), 40.0), [f"192.168.{n % 250}.{k + 10}" for k in range(rng.randint(1, 3))])
        for n, host_id in enumerate(ids)
    ]  # fmt: skip
    # Polling writes day by day for the whole fleet, so a day's rows sit together on disk;
    # --host-major writes each host's 90 days at once (a fleet backfilled in one go): slower reads.
    order = (
        [(p, d) for p in profiles for d in days]
        if args.host_major
        else [(p, d) for d in days for p in profiles]
    )
    started = time.perf_counter()
    n_days = n_sources = 0
    day_rows, source_rows = [], []
    with transaction.atomic(), connection.cursor() as cursor:
        for n, ((host_id, volume, own), day) in enumerate(order, 1):
            k = min(int(rng.paretovariate(1.5) * args.sources / 3) + 5, args.sources * 4)
            ranks = rng.choices(range(POOL), cum_weights=cumulative, k=k)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            entries = []  # (ip, sessions, failed attempts, accepted)
            for ip in {address(rank) for rank in ranks}:
                s = rng.randint(1, int(4 * volume) + 1)
                entries.append((ip, s, s * rng.randint(1, 6), 1 if rng.random() < 0.002 else 0))
            for ip in own:  # the host's real users, most days; one mistypes now and then
                if rng.random() < 0.6:
                    s = rng.randint(1, 5)
                    entries.append((ip, s, rng.choice([0, 0, 0, 1]), s))
            sessions = sum(e[1] for e in entries)
            failed = sum(e[2] for e in entries)
            accepted = sum(e[3] for e in entries)
            sql_day = ops.adapt_datefield_value(day)
            for ip, s, f, a in entries:
                first = start + timedelta(seconds=rng.randint(0, 40000))
                source_rows.append((host_id, sql_day, ip, s, f, a, json.dumps(rng.sample(USERS, rng.randint(1, 4))),
                                    ops.adapt_datetimefield_value(first),
                                    ops.adapt_datetimefield_value(first + timedelta(seconds=s * 20))))  # fmt: skip
            top = [{"user": u, "sessions": rng.randint(1, 50), "failed_attempts": rng.randint(1, 200),
                    "accepted": 0} for u in rng.sample(USERS, 10)]  # fmt: skip
            failed_sessions = max(sessions - accepted - k // 3, 0)
            day_rows.append((host_id, sql_day, sessions, accepted, failed, failed_sessions,
                             failed_sessions // 2, k // 3, len(entries), len(entries), json.dumps(top),
                             ops.adapt_datetimefield_value(now)))  # fmt: skip
            truth[day]["sessions"] += sessions
            truth[day]["accepted"] += accepted
            truth[day]["failed_attempts"] += failed
            truth[day]["ips"].update(e[0] for e in entries)
            if len(day_rows) == 1000 or n == len(order):
                cursor.executemany(day_sql, day_rows)
                cursor.executemany(source_sql, source_rows)
                n_days += len(day_rows)
                n_sources += len(source_rows)
                day_rows, source_rows = [], []
            if n % (len(order) // 10) == 0:
                print(f"  seeded {n:,} host days ({n_sources:,} sources) in {time.perf_counter() - started:.0f} s",
                      flush=True)  # fmt: skip
    # The fleet's sums per address and day, which polling keeps as it writes each host's day:
    # built here as the migration that introduced them builds them from stored sources.
    # And their totals over every stored day, as their own migration builds them.
    with connection.schema_editor() as schema_editor:
        importlib.import_module("inventory_app.migrations.0007_fleet_address").build_from_sources(
            django_apps, schema_editor
        )
        importlib.import_module("inventory_app.migrations.0008_fleet_address_total").build_from_days(
            django_apps, schema_editor
        )
    if connection.vendor == "postgresql":
        # What autovacuum does after a bulk insert (PostgreSQL 13+): statistics, and the
        # visibility map that lets COUNT(DISTINCT ip) read the (day, ip) index alone.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    elif args.analyze_sqlite:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(f"  {args.hosts} hosts, {n_days:,} host days, {n_sources:,} host sources "
          f"in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    return truth


def time_url(client, url: str, runs: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return {
        "url": url,
        "p50": statistics.median(times),
        "max": max(times),
        "queries": len(captured),
        "bytes": len(response.content),
    }


def child(args) -> int:
    setup_django(args.data_dir, args.database_url)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    from dashboard.views import HOSTS_PER_PAGE

    call_command("migrate", verbosity=0)
    today = timezone.localdate()
    truth = seed(args, today)
    client = Client()
    client.force_login(User.objects.create_user("bench", password=secrets.token_urlsafe()))

    since14 = today - timedelta(days=13)
    since90 = today - timedelta(days=min(args.days, 90) - 1)
    r90 = f"?since={since90}&until={today}"
    # A day short of every stored day: the totals less the day outside (fleet.outside_totals),
    # as in production, where retention keeps a day more than a 90-day range shows.
    r89 = f"?since={since90 + timedelta(days=1)}&until={today}"
    busiest = "host0000"
    overview = ["/", "/dashboard/data/connections/", "/dashboard/data/outcomes/"]
    others = [
        "/" + r90,
        "/dashboard/data/connections/" + r90,
        "/dashboard/data/outcomes/" + r90,
        f"/hosts/{busiest}/",
        f"/dashboard/data/hosts/{busiest}/outcomes/",
        f"/dashboard/data/hosts/{busiest}/users/",
        f"/hosts/{busiest}/{r90}",
        f"/days/{today}/",
        "/attackers/",
        "/dashboard/data/attackers/",
        "/attackers/" + r90,
        "/" + r89,
        "/attackers/" + r89,
    ]
    load = os.getloadavg()[0]
    busy = (
        f"; the machine is busy (load {load:.1f} on {os.cpu_count()} CPUs): times will be high"
        if load > 1
        else ""
    )
    print(f"  timing on {connection.vendor}: {args.runs} runs per overview URL, {args.other_runs} per other{busy}",
          flush=True)  # fmt: skip
    results = []
    for url in overview + others:
        results.append(time_url(client, url, args.runs if url in overview else args.other_runs))
        row = results[-1]
        print(f"    {url}: p50 {row['p50']:.0f} ms, max {row['max']:.0f} ms", flush=True)

    # Correctness: what the pages say against what was seeded. The test environment records
    # each response's template context (and slows rendering: only now, after the timing).
    setup_test_environment()
    failures = []
    window = [today - timedelta(days=i) for i in range(13, -1, -1)]
    page = client.get("/")
    totals = page.context["totals"]
    for name in ("sessions", "accepted", "failed_attempts"):
        expected = sum(truth[d][name] for d in window)
        if totals[name] != expected:
            failures.append(f"overview {name}: {totals[name]} != {expected}")
    distinct = len(set().union(*(truth[d]["ips"] for d in window)))
    if totals["distinct_sources"] != distinct:
        failures.append(f"overview distinct sources: {totals['distinct_sources']} != {distinct}")
    shown, paged = len(page.context["hosts"]), page.context["page_obj"].paginator.count
    if (shown, paged) != (min(args.hosts, HOSTS_PER_PAGE), args.hosts):
        failures.append(f"host table: {shown} rows of {paged} hosts, not a page of {args.hosts}")
    stacked = client.get("/dashboard/data/connections/").json()
    per_day = [sum(d["data"][i] for d in stacked["datasets"]) for i in range(len(stacked["labels"]))]
    if per_day != [truth[d]["sessions"] for d in window] or stacked["labels"][0] != since14.isoformat():
        failures.append("connections chart: per-day sums differ from the seeded ones")
    outcomes = {d["label"]: d["data"] for d in client.get("/dashboard/data/outcomes/").json()["datasets"]}
    if outcomes["Accepted"] != [truth[d]["accepted"] for d in window]:
        failures.append("outcomes chart: accepted per day differs")
    if outcomes["Failed attempts"] != [truth[d]["failed_attempts"] for d in window]:
        failures.append("outcomes chart: failed attempts per day differs")
    chart = {d["label"]: d["data"] for d in client.get("/dashboard/data/attackers/").json()["datasets"]}
    if chart["Addresses"] != [len(truth[d]["ips"]) for d in window]:
        failures.append("attackers chart: distinct addresses per day differ from the seeded ones")
    for since in (since90, since90 + timedelta(days=1)):
        failures += check_attackers(client, since, today)
        shown = client.get(f"/?since={since}&until={today}").context["totals"]["distinct_sources"]
        distinct = len(set().union(*(truth[d]["ips"] for d in days_from(since, today))))
        if shown != distinct:
            failures.append(f"overview distinct sources since {since}: {shown} != {distinct}")
    print("RESULT " + json.dumps({"vendor": connection.vendor, "results": results, "failures": failures}))
    return 0


def days_from(since: date, until: date) -> list[date]:
    return [since + timedelta(days=i) for i in range((until - since).days + 1)]


def check_attackers(client, since: date, until: date) -> list[str]:
    """The attackers page over the range (read from the fleet's rows per address and day)
    against the same ranking computed the slow way, from every host's sources."""
    from django.db.models import Count, Max, Min, Q, Sum

    from dashboard.views import ATTACKERS_PER_PAGE
    from inventory_app.models import HostSource

    slow = list(
        HostSource.objects.filter(day__gte=since, day__lte=until)
        .values("ip")
        .annotate(hosts=Count("host", distinct=True), sessions=Sum("sessions"), failed_attempts=Sum("failed_attempts"),
                  accepted=Sum("accepted"), first_seen=Min("first_seen"), last_seen=Max("last_seen"))
        .annotate(flagged=Q(accepted__gt=0, failed_attempts__gt=0))
        .order_by("-flagged", "-failed_attempts", "ip")[:ATTACKERS_PER_PAGE]
    )  # fmt: skip
    fields = ("ip", "hosts", "sessions", "failed_attempts", "accepted", "first_seen", "last_seen", "flagged")
    shown = [
        {f: row[f] for f in fields}
        for row in client.get(f"/attackers/?since={since}&until={until}").context["rows"]
    ]
    expected = [{f: row[f] for f in fields} for row in slow]
    if shown != expected or not shown:
        wrong = next((a, b) for a, b in itertools.zip_longest(shown, expected) if a != b)
        return [f"attackers page: its rows differ from the ranking over every host's sources, first {wrong}"]
    return []


# --------------------------------------------------------------------------------------------
# The parent: databases, children, report
# --------------------------------------------------------------------------------------------


def run_backend(args, label: str, database_url: str, data_dir: str) -> dict | None:
    cmd = [PYTHON, os.path.abspath(__file__), "--child", "--data-dir", data_dir, "--database-url", database_url,
           "--hosts", str(args.hosts), "--days", str(args.days), "--sources", str(args.sources),
           "--runs", str(args.runs), "--other-runs", str(args.other_runs), "--seed", str(args.seed)]  # fmt: skip
    if args.analyze_sqlite:
        cmd.append("--analyze-sqlite")
    if args.host_major:
        cmd.append("--host-major")
    print(f"== {label}", flush=True)
    proc = subprocess.Popen(cmd, cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    result = None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
        else:
            print(line, end="", flush=True)
    if proc.wait() != 0 or result is None:
        print(f"  {label}: the child failed (exit code {proc.returncode})")
        return None
    return result


def report(result: dict) -> bool:
    print(f"\n{result['vendor']}: ms per request (p50 / max), queries, size")
    met = True
    for i, row in enumerate(result["results"]):
        target = i < 3
        verdict = ""
        if target:
            ok = row["max"] < TARGET_MS
            met &= ok
            verdict = f"  {'MET' if ok else 'MISSED'} (< {TARGET_MS:.0f} ms)"
        print(f"  {row['url']:<58} {row['p50']:7.1f} {row['max']:7.1f}  {row['queries']:2} q  "
              f"{row['bytes'] / 1024:7.1f} KiB{verdict}")  # fmt: skip
    for failure in result["failures"]:
        print(f"  WRONG: {failure}")
    print(f"  target: overview HTML and JSON under {TARGET_MS:.0f} ms: {'MET' if met else 'MISSED'}")
    return not result["failures"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000, help="Hosts in the fleet.")
    parser.add_argument("--days", type=int, default=90, help="Days of data ending today.")
    parser.add_argument("--sources", type=int, default=20, help="Typical source addresses per host and day.")
    parser.add_argument("--runs", type=int, default=20, help="Timed requests per overview URL.")
    parser.add_argument("--other-runs", type=int, default=5, help="Timed requests per other URL.")
    parser.add_argument("--seed", type=int, default=1, help="Random seed of the generated fleet.")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL only.")
    parser.add_argument("--both", action="store_true", help="SQLite, then PostgreSQL.")
    parser.add_argument("--host-major", action="store_true", help="Write each host's days at once.")
    parser.add_argument("--analyze-sqlite", action="store_true", help="Run ANALYZE on SQLite too.")
    parser.add_argument(
        "--keep", action="store_true", help="Keep the SQLite temp dir and the PostgreSQL database."
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    os.makedirs(OUT_DIR, exist_ok=True)
    results, ok = [], True
    if not args.postgres:
        tmp = tempfile.mkdtemp(prefix="dashboard-", dir=OUT_DIR)
        try:
            url = f"sqlite:///{os.path.join(tmp, 'bench.sqlite3')}"
            results.append(run_backend(args, "SQLite", url, tmp))
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                print(f"  kept {tmp}")
    if args.postgres or args.both:
        url, why = create_postgres("alpha_bench_dash")
        if url is None:
            print(f"== PostgreSQL skipped: {why}")
        else:
            tmp = tempfile.mkdtemp(prefix="dashboard-pg-", dir=OUT_DIR)
            try:
                results.append(run_backend(args, "PostgreSQL", url, tmp))
            finally:
                if not args.keep:
                    drop_postgres(url)
                else:
                    print(f"  kept {url}")
                shutil.rmtree(tmp, ignore_errors=True)
    for result in results:
        if result is None:
            ok = False
        else:
            ok &= report(result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
