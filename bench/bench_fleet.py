"""A polling round over a simulated fleet: 1,000 agents on loopback, 10% of them silent.

    .venv/bin/python bench/bench_fleet.py [--hosts 1000] [--silent-share 0.1] [--days 2]
        [--concurrency 64] [--connect-timeout 3] [--read-timeout 10] [--rounds 3]
        [--postgres | --both] [--no-sequential | --seq-backend sqlite|postgresql] [--seq-silent 5]
        [--celery K [--celery-concurrency 32] [--celery-only] [--celery-limit 1800]]
        [--wait-quiet 180] [--no-bare] [--keep]
    BENCH_FLEET_WRAP="py-spy record --gil -f raw -o r1.txt --" .venv/bin/python bench/bench_fleet.py ...

In one run:
  1. A fleet simulator in its own process (so it shares no GIL with the poller): a hand-written
     asyncio HTTP/1.1 server (keep-alive) on 127.0.0.1:<free port> serving host N under the
     prefix /h/N, with the agent API's JSON shapes (collector/serializers.py): health, the day
     range, the day object (counts + top 10 sources and users) and each day's sources in cursor
     pages (--page-size, default 250, so most days take two pages; a real agent allows 1,000).
     `next` links are absolute without the /h/N prefix (a proxy that strips it; the poller
     follows only a link's path under the host's URL); --next-with-prefix keeps it, as Django
     behind a proxy with SCRIPT_NAME would. It checks each host's bearer token (401 otherwise).
     Host N's data is deterministic (seeded by N, the day and a generation number): --days days
     ending today (default 2: yesterday and today), 200-400 sources per day. Every answer is
     built before the timed rounds, so the simulator spends its CPU on serving only. A share of
     the hosts (--silent-share, every 10th) accept the connection, read the request and never
     answer, holding the socket open. The simulator stops by itself after --sim-lifetime
     seconds or when this script's pipe to it closes.
  2. A fresh database per phase (SQLite file in a temp dir under bench/out/; with --postgres /
     --both a fresh PostgreSQL database on 127.0.0.1:5432, dropped afterwards), migrated, with
     one Host row per simulated host (url http://127.0.0.1:PORT/h/N, its token, verify_tls left
     at its default True as in production).
  3. Rounds, each `manage.py poll_hosts --once` in its own process (DEBUG off), with
     ALPHA_POLL_CONCURRENCY / _CONNECT_TIMEOUT / _READ_TIMEOUT from the options:
        R1  first poll of the fleet: every day of every answering host is new (sources fetched);
        R2  steady state after today's counts grew on every answering host: yesterday is
            unchanged (skipped), today is fetched again;
        R3  steady state with nothing changed (both days skipped).
     Each is timed (the command's own "Polled in X s", plus process wall, CPU, peak RSS, and the
     CPU the rest of the machine used meanwhile), and after each the database is checked against
     the simulator's data: every answering host's HostDay rows (counts and top users) and every
     HostSource row exactly (all fields), state ok and no error; every silent host with no
     data, a "did not answer in time" error, consecutive_failures = round number, state down.
     A round that poll_hosts aborts is reported (and the backend's later rounds skipped).
     BENCH_FLEET_WRAP, if set, is a command line that each round runs under, e.g.
     "py-spy record --gil -f raw -o r1.txt --" (the times then include the wrapper's cost).
  4. Sequential (--seq-backend, default SQLite; a fresh database): `polling.poll_host(id)` one
     host after another in one process, on the same data as R1, then R2. Every answering host is
     polled and timed; a silent host costs the health request's timeout
     (ALPHA_POLL_HEALTH_TIMEOUT, default 3 s; the environment's ALPHA_* are not passed on), so
     only --seq-silent of them are polled and the rest are EXTRAPOLATED (their mean time x the
     number of silent hosts).
     The report says so. The sequential results are verified like the rounds.
  5. Celery (--celery K, default 0 = off): the same rounds through the production path, after
     the poll_hosts rounds (--celery-only skips those), on a fresh database per backend. K
     workers `celery -A alphaproject worker --pool threads --concurrency C -l warning
     --without-mingle --without-gossip -n benchN@%h` (C = --celery-concurrency, default 32)
     with the poller's environment and CELERY_BROKER_URL on an empty Redis database of
     redis://127.0.0.1:6379 (claimed as inventory_app/tests/test_tasks.py claims one: a key SET
     NX with an expiry on dbs 15..1; flushed at the end). Start-up (until every worker answers a
     ping) is not timed. A round: the simulator's generation set as above, t0 taken, then
     poll_all_hosts sent by name as the beat sends it (a worker runs it; it fans out one
     poll_host task per enabled host with group().apply_async()); the database is read every
     0.2 s until every Host has last_poll_at >= t0 and polling_since NULL. The round time is
     from the send to that read (the line also gives when the last host was saved, from
     max(last_poll_at)). CPU: utime + stime of the worker processes (their threads included)
     from /proc, and the rest of the machine as for the rounds. Verified like the rounds. A
     round is a failure if it is not done after --celery-limit s, if no task is queued or
     running for 2 s while hosts are not done (a task failed before it recorded anything on its
     host, e.g. PostgreSQL refused the connection: K x C threads hold up to K x C connections,
     and the local server allows 100), or if a worker exits. The workers' logs (warnings and
     errors only) are in the work dir; the lines each round logged are counted in the report.
     The workers get SIGTERM at the end (killed after 30 s).
  Bare baseline (--no-bare: off): right before R1 and R3, a child (`_bare`) makes the same
  requests with a stdlib asyncio client (one kept-alive connection per host, json.loads of each
  answer, nothing stored), with the poller's concurrency and timeouts (health 3 s); the
  simulator's request counts of the baseline and of the round are compared.
  Before each timed phase the script waits up to --wait-quiet seconds for the rest of the
  machine to go idle (other work skews everything here) and warns if it did not.

Target (MET / MISSED, never changes the exit code): R1 completes within 30 s, all answering
hosts stored correctly, the silent ones marked down; one TARGET line per backend and path
(poll_hosts, Celery); R1 <= 2x and R3 <= 1.2x the bare baseline's time. Exit 1 if a correctness check fails. Days are UTC (TIME_ZONE=UTC everywhere); a run across midnight UTC is reported as void.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from common import (  # noqa: E402
    MANAGE,
    OUT_DIR,
    PYTHON,
    create_postgres,
    drop_postgres,
    manage,
    run_timed,
)

from collector.contract import COUNT_NAMES, MAX_PAGE_ROWS  # noqa: E402

TARGET_SECONDS = 30.0
BARE_R1_TARGET = 2.0  # R1 at most this many times the bare baseline's time for the same requests
BARE_R3_TARGET = 1.2  # R3 likewise
ALERT_TARGET = 0.1  # evaluating the rules after a round: at most this share of the round's time
USERS = [
    "root", "admin", "test", "user", "ubuntu", "oracle", "postgres", "guest", "git", "deploy",
    "ftp", "pi", "support", "www-data", "mysql", "nagios", "jenkins", "hadoop", "ec2-user", "ansible",
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# The fleet's data: deterministic, computed alike by the simulator and by the verifier
# --------------------------------------------------------------------------------------------


def token_of(n: int) -> str:
    return f"fleet-bench-token-{n:05d}-{(n * 2654435761) % 4294967296:08x}"


def silent_hosts(hosts: int, share: float) -> set[int]:
    """Host numbers (1..hosts) that never answer: spread evenly over the list (every 10th)."""
    count = round(hosts * share)
    return {1 + (i * hosts) // count for i in range(count)} if count else set()


def fleet_days(today: date, days: int) -> list[date]:
    return [today - timedelta(days=i) for i in range(days - 1, -1, -1)]


# Addresses the whole fleet shares, so that the alert rules have real work after a round:
# attackers failing on many hosts (rule 3's K hosts), a few of them getting in somewhere (rule 1),
# and the offices staff log in from (rule 2: a user from a network not seen for them before).
ATTACKERS = [f"203.0.113.{i}" for i in range(1, 101)]
OFFICES = [f"198.51.{100 + i // 10}.{10 + i % 10}" for i in range(20)]
STAFF = ["deploy", "ansible", "alice", "bob", "git"]


def between(rng: random.Random, first: datetime, last: datetime) -> datetime:
    return first + timedelta(seconds=rng.randint(0, int((last - first).total_seconds())))


def day_data(
    n: int, day: date, gen: int, today: date, lo: int, hi: int, until: int = 86399
) -> tuple[dict, list[dict], list[dict]]:
    """Host n's counts, sources and logins for one day. Only today depends on the generation: it
    grows. Today's times go up to `until` seconds after its midnight (the benchmark's start): an
    agent reports no future, and the alert rules' windows end at now."""
    last = until if day == today else 86399
    rng = random.Random(f"fleet:{n}:{day.isoformat()}:{gen if day == today else 0}")
    k = rng.randint(lo, hi)
    attackers, offices = rng.sample(ATTACKERS, 3), rng.sample(OFFICES, 2)
    ips: set[str] = {*attackers, *offices}
    while len(ips) < k:
        x = rng.getrandbits(32)
        if rng.random() < 0.03:
            ips.add(f"2001:db8:{x >> 16:x}::{x & 0xFFFF:x}")
        else:
            ips.add(f"{1 + (x >> 24) % 223}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}")
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    sources, logins = [], []
    for ip in sorted(ips):
        if ip in offices:  # staff: one to three logins, no failures
            accepted = sessions = rng.randint(1, 3)
            failed = 0
            users = sorted(rng.sample(STAFF, rng.randint(1, 2)) + (["root"] if rng.random() < 0.02 else []))
        elif ip in attackers:  # guessing passwords; one in 200 gets in
            sessions = rng.randint(5, 50)
            accepted = 1 if rng.random() < 0.005 else 0
            failed = rng.randint(sessions, 3 * sessions)
            users = sorted(rng.sample(USERS, rng.randint(1, 5)))
        else:
            sessions = min(int(rng.paretovariate(1.2)), 5000)
            accepted = 0
            failed = rng.randint(0, 3 * sessions)
            users = sorted(rng.sample(USERS, rng.randint(1, 5)))
        start = rng.randint(0, last)
        end = rng.randint(start, last)
        first_seen, last_seen = midnight + timedelta(seconds=start), midnight + timedelta(seconds=end)
        first_failed = last_failed = first_accepted = None
        if failed:
            first_failed, last_failed = sorted(between(rng, first_seen, last_seen) for _ in range(2))
        if accepted:
            # After its failures, if any: "logged in after failing" is decided on these times.
            first_accepted = between(rng, last_failed or first_seen, last_seen)
            for i in range(accepted):
                at = first_accepted if i == 0 else between(rng, first_accepted, last_seen)
                logins.append(
                    {
                        "at": at,
                        "user": users[i % len(users)],
                        "ip": ip,
                        "port": rng.randint(1024, 65535),
                        "method": "publickey" if ip in offices else "password",
                        "key": "",
                        "ended_at": None
                        if rng.random() < 0.5
                        else at + timedelta(minutes=rng.randint(1, 90)),
                    }
                )
        sources.append(
            {
                "ip": ip,
                "sessions": sessions,
                "failed_attempts": failed,
                "accepted": accepted,
                "users": users,
                "first_seen": first_seen,
                "last_seen": last_seen,
                "first_failed": first_failed,
                "last_failed": last_failed,
                "first_accepted": first_accepted,
            }
        )
    logins.sort(key=lambda login: (login["at"], login["ip"], login["port"]))
    total = sum(s["sessions"] for s in sources)
    accepted_total = sum(s["accepted"] for s in sources)
    # A failed connection has at least one failed attempt: never more of them than attempts.
    failed_sessions = rng.randint(0, min(total - accepted_total, sum(s["failed_attempts"] for s in sources)))
    # In the contract's order: connections, logins, failed attempts, failed connections, invalid
    # user, scanners, addresses.
    values = (total, accepted_total, sum(s["failed_attempts"] for s in sources), failed_sessions,
              rng.randint(0, failed_sessions), total - accepted_total - failed_sessions, k)  # fmt: skip
    counts = {"date": day, **dict(zip(COUNT_NAMES, values, strict=True))}
    # The day object's busiest sources and user names (GET /api/v1/logins/<day>/), derived from
    # the sources: ten each, ordered as the agent orders them.
    per_user: dict[str, list[int]] = {}
    for s in sources:
        for u in s["users"]:
            t = per_user.setdefault(u, [0, 0, 0])
            t[0] += s["sessions"]
            t[1] += s["failed_attempts"]
            t[2] += s["accepted"]
    counts["top_users"] = [
        {"user": u, "sessions": t[0], "failed_attempts": t[1], "accepted": t[2]}
        for u, t in sorted(per_user.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:10]
    ]
    counts["top_sources"] = [
        {f: s[f] for f in ("ip", "sessions", "failed_attempts", "accepted")}
        for s in sorted(sources, key=lambda s: (-s["sessions"], -s["failed_attempts"], s["ip"]))[:10]
    ]
    return counts, sources, logins


# A source's times, sent as ISO 8601 (or null).
TIMES = ("first_seen", "last_seen", "first_failed", "last_failed", "first_accepted")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# The simulator (child process `_serve`): a minimal asyncio HTTP/1.1 server
# --------------------------------------------------------------------------------------------


class Fleet:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.today = date.fromisoformat(cfg["today"])
        self.days = fleet_days(self.today, cfg["days"])
        self.silent = silent_hosts(cfg["hosts"], cfg["silent_share"])
        self.gen = 0
        self.port = 0
        # (n, day, gen) -> (range row JSON, [source JSON fragments], day object JSON, [login JSON])
        self.data: dict[tuple[int, date, int], tuple[bytes, list[bytes], bytes, list[bytes]]] = {}
        self.health: dict[int, dict] = {}
        self.stats = {
            "requests": 0,
            "health": 0,
            "range": 0,
            "day": 0,
            "pages": 0,
            "login_pages": 0,
            "unauthorized": 0,
            "silent": 0,
        }

    def build(self, gens: list[int]) -> None:
        lo, hi = self.cfg["sources_min"], self.cfg["sources_max"]
        for n in range(1, self.cfg["hosts"] + 1):
            if n in self.silent:
                continue
            for gen in gens:
                for day in self.days:
                    if gen and day != self.today:
                        continue  # only today differs between generations
                    counts, sources, logins = day_data(n, day, gen, self.today, lo, hi, self.cfg["until"])
                    plain = {k: v for k, v in counts.items() if not k.startswith("top_")}
                    row = json.dumps({**plain, "date": day.isoformat()}).encode()
                    detail = json.dumps(
                        {"host": f"fleet-{n:05d}", **counts, "date": day.isoformat()}
                    ).encode()
                    frags = [
                        json.dumps({**s, **{f: iso(s[f]) for f in TIMES}}, separators=(",", ":")).encode()
                        for s in sources
                    ]
                    login_frags = [
                        json.dumps(
                            {**login, "at": iso(login["at"]), "ended_at": iso(login["ended_at"])},
                            separators=(",", ":"),
                        ).encode()
                        for login in logins
                    ]
                    self.data[(n, day, gen)] = (row, frags, detail, login_frags)
            self.health[n] = {
                "host": f"fleet-{n:05d}",
                "agent_version": "0.2.0",
                "time_zone": "UTC",
                "following": True,
                "sources": [
                    {
                        "kind": "file",
                        "path": "/var/log/auth.log",
                        "inode": 1000 + n,
                        "offset": 123456,
                        "file_size": 123456,
                        "unread_bytes": 0,
                        "cursor": "",
                        "last_read_at": None,
                        "last_event_at": iso(datetime.combine(self.today, datetime.min.time(), UTC)),
                        "seconds_since_last_event": 60,
                        "lines_read": 1000,
                        "malformed_lines": 0,
                        "unknown_last_24h": 0,
                        "unknown_samples": [],
                    }
                ],
            }

    def key(self, n: int, day: date) -> tuple[int, date, int]:
        return (n, day, self.gen if day == self.today else 0)

    def answer(self, n: int, path: str, query: str) -> tuple[int, bytes]:
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        if path == "/api/v1/health/":
            self.stats["health"] += 1
            now = datetime.now(UTC)
            body = {**self.health[n], "now": iso(now), "heartbeat_at": iso(now - timedelta(seconds=20))}
            body["sources"][0]["last_read_at"] = iso(now)
            return 200, json.dumps(body).encode()
        if path == "/api/v1/logins/":
            self.stats["range"] += 1
            try:
                until = date.fromisoformat(params["until"]) if "until" in params else self.today
                since = date.fromisoformat(params["since"]) if "since" in params else until - timedelta(29)
            except ValueError:
                return 400, b'{"since":["Date has wrong format."]}'
            rows = [self.data[self.key(n, d)][0] for d in self.days if since <= d <= until]
            return 200, b'{"host":"fleet-%05d","days":[' % n + b",".join(rows) + b"]}"
        m = re.fullmatch(r"/api/v1/logins/(\d{4}-\d\d-\d\d)/", path)
        if m:
            self.stats["day"] += 1
            day = date.fromisoformat(m.group(1))
            if day not in self.days:
                body = {"host": f"fleet-{n:05d}", "date": day.isoformat(), **dict.fromkeys(COUNT_NAMES, 0),
                        "top_sources": [], "top_users": []}  # fmt: skip
                return 200, json.dumps(body).encode()
            return 200, self.data[self.key(n, day)][2]
        m = re.fullmatch(r"/api/v1/(sources|logins)/(\d{4}-\d\d-\d\d)/(accepted/)?", path)
        if m and (m.group(1) == "logins") == bool(m.group(3)):
            logins = m.group(1) == "logins"
            self.stats["login_pages" if logins else "pages"] += 1
            try:
                day = date.fromisoformat(m.group(2))
                size = min(int(params.get("page_size", 500)), self.cfg["page_size"])
                page = int(params.get("cursor", 0))
            except ValueError:
                return 400, b'{"detail":"bad parameter"}'
            frags = self.data[self.key(n, day)][3 if logins else 1] if day in self.days else []
            chunk = frags[page * size : (page + 1) * size]
            nxt = prev = b"null"
            # DRF builds the link from the request as Django sees it; behind a proxy that strips
            # /h/N that is /api/v1/...: the poller follows only the link's path, under its base URL.
            # With --next-with-prefix the link keeps /h/N, as Django behind a proxy that passes
            # the prefix (SCRIPT_NAME / FORCE_SCRIPT_NAME) would build it.
            prefix = f"/h/{n}" if self.cfg.get("next_prefix") else ""
            link = f'"http://127.0.0.1:{self.port}{prefix}{path}?cursor=%d&page_size={size}"'
            if (page + 1) * size < len(frags):
                nxt = (link % (page + 1)).encode()
            if page > 0:
                prev = (link % (page - 1)).encode()
            return 200, b'{"next":' + nxt + b',"previous":' + prev + b',"results":[' + b",".join(
                chunk
            ) + b"]}"
        return 404, b'{"detail":"Not found."}'

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                path, _, query = target.partition("?")
                self.stats["requests"] += 1
                status, body = 404, b'{"detail":"Not found."}'
                if path.startswith("/_ctl/"):
                    status, body = self.control(path)
                else:
                    m = re.match(r"/h/(\d+)(/.*)$", path)
                    n = int(m.group(1)) if m else 0
                    if m and 1 <= n <= self.cfg["hosts"]:
                        if n in self.silent:
                            # Accepted, read, never answered: hold the socket until the client
                            # gives up (or the simulator's lifetime ends).
                            self.stats["silent"] += 1
                            while await reader.read(65536):
                                pass
                            return
                        if headers.get("authorization") != f"Bearer {token_of(n)}":
                            self.stats["unauthorized"] += 1
                            status, body = 401, b'{"detail":"Invalid token."}'
                        elif method != "GET":
                            status, body = 405, b'{"detail":"Method not allowed."}'
                        else:
                            status, body = self.answer(n, m.group(2), query)
                reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(
                    status, "X"
                )
                close = headers.get("connection", "").lower() == "close"
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n{'Connection: close' if close else 'Connection: keep-alive'}"
                    "\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                if close:
                    return
        except (ConnectionError, ValueError):
            return
        finally:
            writer.close()

    def control(self, path: str) -> tuple[int, bytes]:
        m = re.fullmatch(r"/_ctl/gen/(\d+)", path)
        if m:
            gen = int(m.group(1))
            if not any(k[2] == gen for k in self.data) and gen:
                self.build([gen])
            self.gen = gen
            return 200, json.dumps({"gen": gen}).encode()
        if path == "/_ctl/stats":
            return 200, json.dumps({**self.stats, "gen": self.gen}).encode()
        return 404, b"{}"


def serve_main(cfg: dict) -> None:
    fleet = Fleet(cfg)
    started = time.perf_counter()
    fleet.build([0, 1])

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        server = await asyncio.start_server(fleet.handle, "127.0.0.1", 0, backlog=4096)
        fleet.port = server.sockets[0].getsockname()[1]
        loop.call_later(cfg["lifetime"], stop.set)

        def watch_stdin() -> None:
            sys.stdin.buffer.read()  # EOF: the benchmark is gone
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_stdin, daemon=True).start()
        print(f"READY {fleet.port} {time.perf_counter() - started:.1f}", flush=True)
        async with server:
            await stop.wait()

    asyncio.run(run())
    os._exit(0)  # held silent sockets and the stdin thread: no lingering


# --------------------------------------------------------------------------------------------
# Django-side children: set up hosts, verify, sequential polls
# --------------------------------------------------------------------------------------------


def django_setup() -> None:
    sys.path.insert(0, PROJECT_DIR)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alphaproject.settings")
    import django

    django.setup()


def setup_main(cfg: dict) -> None:
    django_setup()
    from inventory_app.models import Host

    Host.objects.bulk_create(
        Host(name=f"fleet-{n:05d}", url=f"http://127.0.0.1:{cfg['port']}/h/{n}", token=token_of(n))
        for n in range(1, cfg["hosts"] + 1)
    )
    print(json.dumps({"hosts": Host.objects.count()}))


def host_ids(numbers: list[int]) -> list[int]:
    from inventory_app.models import Host

    by_name = dict(Host.objects.values_list("name", "pk"))
    return [by_name[f"fleet-{n:05d}"] for n in numbers]


def verify_main(cfg: dict) -> None:
    """Compare the database with the simulator's data for the hosts in cfg['numbers']."""
    django_setup()
    from inventory_app.models import Host, HostDay, HostLogin, HostSource

    today = date.fromisoformat(cfg["today"])
    silent = silent_hosts(cfg["hosts"], cfg["silent_share"])
    numbers = cfg["numbers"]
    login_fields = ("at", "user", "ip", "port", "method", "key", "ended_at")
    login_rows: dict[tuple[int, date], list[tuple]] = {}
    for row in HostLogin.objects.order_by("at", "ip", "port").values("host_id", "day", *login_fields):
        login_rows.setdefault((row["host_id"], row["day"]), []).append(tuple(row[f] for f in login_fields))
    hosts = {int(h.name.split("-")[1]): h for h in Host.objects.all()}
    day_rows: dict[int, dict] = {}
    for row in HostDay.objects.values():
        day_rows.setdefault(row["host_id"], {})[row["day"]] = row
    source_rows: dict[tuple[int, date], dict] = {}
    for row in HostSource.objects.values():
        source_rows.setdefault((row["host_id"], row["day"]), {})[row["ip"]] = row
    problems: list[str] = []
    answering_ok = silent_ok = n_days = n_sources = n_logins = 0
    states: dict[str, int] = {}
    fields = COUNT_NAMES
    for n in numbers:
        host = hosts[n]
        states[host.state] = states.get(host.state, 0) + 1
        bad: list[str] = []
        stored_days = day_rows.get(host.pk, {})
        if n in silent:
            want_state = "down"
            if host.state != want_state:
                bad.append(f"state {host.state!r}, expected {want_state!r}")
            if host.consecutive_failures != cfg["failures"]:
                bad.append(f"consecutive_failures {host.consecutive_failures}, expected {cfg['failures']}")
            if "did not answer in time" not in host.last_error:
                bad.append(f"last_error {host.last_error!r}")
            if stored_days or any(k[0] == host.pk for k in source_rows):
                bad.append("has stored data")
            silent_ok += not bad
        else:
            if host.state != "ok" or host.last_error or host.consecutive_failures:
                bad.append(
                    f"state {host.state!r}, error {host.last_error!r}, failures {host.consecutive_failures}"
                )
            days = fleet_days(today, cfg["days"])
            if sorted(stored_days) != days:
                bad.append(f"days {sorted(stored_days)}, expected {days}")
            for day in days:
                counts, sources, logins = day_data(
                    n, day, cfg["gen"], today, cfg["sources_min"], cfg["sources_max"], cfg["until"]
                )
                got = stored_days.get(day)
                if got is not None and any(got[f] != counts[f] for f in fields):
                    bad.append(
                        f"{day}: counts {[got[f] for f in fields]}, expected {[counts[f] for f in fields]}"
                    )
                if got is not None and "top_users" in got and got["top_users"] != counts["top_users"]:
                    bad.append(
                        f"{day}: top_users {got['top_users'][:2]}..., expected {counts['top_users'][:2]}..."
                    )
                got_sources = source_rows.get((host.pk, day), {})
                if len(got_sources) != len(sources):
                    bad.append(f"{day}: {len(got_sources)} sources, expected {len(sources)}")
                for s in sources:
                    g = got_sources.get(s["ip"])
                    if g is None or any(g[f] != s[f] for f in s):
                        bad.append(f"{day}: source {s['ip']} is {g}, expected {s}")
                        break
                got_logins = login_rows.get((host.pk, day), [])
                if got_logins != [tuple(login[f] for f in login_fields) for login in logins]:
                    bad.append(f"{day}: {len(got_logins)} logins, expected {len(logins)} (or they differ)")
                n_days += got is not None
                n_sources += len(got_sources)
                n_logins += len(got_logins)
            answering_ok += not bad
        if bad:
            problems.append(f"host {n}: " + "; ".join(bad[:3]))
    print(
        json.dumps(
            {
                "answering_ok": answering_ok,
                "answering": sum(n not in silent for n in numbers),
                "silent_ok": silent_ok,
                "silent": sum(n in silent for n in numbers),
                "states": states,
                "days": n_days,
                "sources": n_sources,
                "logins": n_logins,
                "problems": problems[:10],
                "n_problems": len(problems),
            }
        )
    )


def evaluate_main(cfg: dict) -> None:
    """Time the alert rules over what the round stored: each rule's query part alone, then
    rules.evaluate() as a first evaluation (no alerts yet: every finding raises one; rolled back)
    and as the next round's (the round's own evaluation stored them: findings are absorbed), then
    delivery.deliver_due() (no channels: nothing is due)."""
    django_setup()
    from django.db import connection, reset_queries, transaction
    from django.utils import timezone

    from alerting import delivery, rules
    from alerting.models import Alert, Rule

    connection.force_debug_cursor = True  # count the queries (DEBUG is off)
    now = timezone.now()
    per_rule = {}
    for rule in Rule.objects.filter(enabled=True).order_by("pk"):
        with transaction.atomic():
            reset_queries()
            t0 = time.perf_counter()
            findings = rule.definition.evaluate(rule, now)
            seconds = time.perf_counter() - t0
            per_rule[rule.kind] = {
                "seconds": seconds,
                "findings": len(findings),
                "queries": len(connection.queries),
            }
            transaction.set_rollback(True)  # rule 4 moves the hosts' baselines: leave them
    with transaction.atomic():
        Alert.objects.all().delete()
        t0 = time.perf_counter()
        rules.evaluate(now)
        first = time.perf_counter() - t0
        alerts = Alert.objects.count()
        transaction.set_rollback(True)
    t0 = time.perf_counter()
    rules.evaluate(now)
    repeat = time.perf_counter() - t0
    t0 = time.perf_counter()
    delivery.deliver_due()
    deliver = time.perf_counter() - t0
    print(
        json.dumps(
            {"rules": per_rule, "first": first, "repeat": repeat, "alerts": alerts, "deliver": deliver}
        )
    )


def sequential_main(cfg: dict) -> None:
    """poll_host(id) for each host in cfg['numbers'], one after another; times per host."""
    django_setup()
    from inventory_app import polling

    silent = silent_hosts(cfg["hosts"], cfg["silent_share"])
    numbers = cfg["numbers"]
    ids = host_ids(numbers)
    times = {"answering": [], "silent": []}
    started = time.perf_counter()
    cpu0 = time.process_time()
    for n, pk in zip(numbers, ids, strict=True):
        t0 = time.perf_counter()
        polling.poll_host(pk)
        times["silent" if n in silent else "answering"].append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "wall": time.perf_counter() - started,
                "cpu": time.process_time() - cpu0,
                "answering": times["answering"],
                "silent": times["silent"],
            }
        )
    )


# --------------------------------------------------------------------------------------------
# The bare baseline (child `_bare`): the poller's requests from a stdlib asyncio client
# --------------------------------------------------------------------------------------------

# The poller's health read timeout (ALPHA_POLL_HEALTH_TIMEOUT, left at its default: poller_env()
# removes the environment's ALPHA_*); every other request reads with --read-timeout.
HEALTH_TIMEOUT = 3.0
BACKFILL_DAYS = 30  # the poller's ALPHA_BACKFILL_DAYS (poller_env) and the bare baseline's first range


async def bare_host(cfg: dict, n: int, gate: asyncio.Semaphore, counts: dict) -> None:
    """Host n as the poller sees it, storing nothing: one kept-alive connection for the host's
    requests, each answer read whole (Content-Length) and json.loads()ed. Round 1: health, the
    day range from the backfill start, then for each listed day with any count its sources page
    by page (following `next`), its day object and, if it counts logins, its accepted-logins
    pages; round 3 (nothing changed since R2): health and the range from yesterday, every day
    unchanged. A silent host costs the health read timeout, as in the poller."""
    today = date.fromisoformat(cfg["today"])
    prefix = f"/h/{n}"
    head_lines = (
        f"Host: 127.0.0.1:{cfg['port']}\r\nAuthorization: Bearer {token_of(n)}\r\n"
        "Accept: application/json\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n"
    )
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", cfg["port"]), cfg["connect_timeout"]
            )
        except (TimeoutError, OSError):
            counts["failed"] += 1
            return

        async def get(target: str, read_timeout: float):
            writer.write(f"GET {prefix}{target} HTTP/1.1\r\n{head_lines}".encode())

            async def read():
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
                body = await reader.readexactly(length)
                if status != 200:
                    raise ValueError(f"status {status}")
                return body

            body = await asyncio.wait_for(read(), read_timeout)
            counts["requests"] += 1
            counts["bytes"] += len(body)
            return json.loads(body)

        async def pages(list_path: str) -> int:
            page = await get(f"{list_path}?page_size={MAX_PAGE_ROWS}", cfg["read_timeout"])
            rows = len(page["results"])
            while page["next"]:
                link = urlsplit(page["next"])
                path = link.path[len(prefix) :] if link.path.startswith(prefix + "/") else link.path
                page = await get(f"{path}?{link.query}", cfg["read_timeout"])
                rows += len(page["results"])
            return rows

        try:
            try:
                await get("/api/v1/health/", HEALTH_TIMEOUT)
            except TimeoutError:
                counts["timed_out"] += 1
                return
            if cfg["round"] == 1:
                since = today - timedelta(days=BACKFILL_DAYS - 1)
            else:  # R1 and R2 polled through the day before yesterday
                since = today - timedelta(days=1)
            until = today + timedelta(days=1)
            days = await get(f"/api/v1/logins/?since={since}&until={until}", cfg["read_timeout"])
            if cfg["round"] == 1:
                for row in days["days"]:
                    if not any(row[f] for f in COUNT_NAMES):
                        continue
                    day = row["date"]
                    rows = await pages(f"/api/v1/sources/{day}/")  # not `+= await`: other hosts run meanwhile
                    counts["sources"] += rows
                    await get(f"/api/v1/logins/{day}/", cfg["read_timeout"])
                    if row["accepted"]:
                        rows = await pages(f"/api/v1/logins/{day}/accepted/")
                        counts["logins"] += rows
                    counts["days"] += 1
            counts["ok"] += 1
        except (TimeoutError, OSError, ValueError, KeyError, asyncio.IncompleteReadError) as exc:
            counts["failed"] += 1
            counts.setdefault("errors", []).append(f"host {n}: {exc!r}"[:200])
        finally:
            writer.close()


def bare_main(cfg: dict) -> None:
    """The whole fleet with at most --concurrency hosts at a time (the poller's threads)."""
    counts = dict.fromkeys(("ok", "timed_out", "failed", "requests", "bytes", "days", "sources", "logins"), 0)

    async def run() -> None:
        gate = asyncio.Semaphore(cfg["concurrency"])
        await asyncio.gather(*(bare_host(cfg, n, gate, counts) for n in range(1, cfg["hosts"] + 1)))

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    asyncio.run(run())
    counts["seconds"] = time.perf_counter() - t0
    counts["cpu"] = time.process_time() - cpu0
    counts["errors"] = counts.get("errors", [])[:5]
    print(json.dumps(counts))


def stats_delta(before: dict, after: dict) -> dict:
    """What the simulator served between two /_ctl/stats reads (requests by kind)."""
    return {k: after[k] - before[k] for k in before if k != "gen" and after[k] != before[k]}


# --------------------------------------------------------------------------------------------
# The benchmark (parent)
# --------------------------------------------------------------------------------------------


def http_get(port: int, path: str) -> dict:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("GET", path)
    body = conn.getresponse().read()
    conn.close()
    return json.loads(body)


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds all processes of the machine used so far (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit: float, sim_pid: int | None = None) -> str:
    """Wait up to `limit` s until the rest of the machine uses < 0.3 cores (3 s in a row): other
    work on this 2-core machine skews every number here. Returns a note for the report."""
    if limit <= 0:
        return ""
    started = time.perf_counter()
    calm = 0
    busy = 0.0
    while time.perf_counter() - started < limit:
        b0, s0 = machine_busy(), proc_cpu(sim_pid) if sim_pid else 0.0
        time.sleep(1.0)
        busy = machine_busy() - b0 - ((proc_cpu(sim_pid) - s0) if sim_pid else 0.0)
        calm = calm + 1 if busy < 0.3 else 0
        if calm >= 3:
            waited = time.perf_counter() - started
            return f"(waited {waited:.0f} s for a quiet machine)" if waited > 4 else ""
    return f"(WARNING: machine still busy after {limit:.0f} s: {busy:.1f} cores used by other processes)"


def child(mode: str, cfg: dict, env: dict) -> dict | list:
    proc = subprocess.run(
        [PYTHON, __file__, mode, json.dumps(cfg)], env=env, cwd=PROJECT_DIR, capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"{mode} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def poller_env(data_dir: str, database_url: str, args) -> dict:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("ALPHA_", "DATABASE_URL", "CELERY_")):
            env.pop(name)
    env.update(
        SECRET_KEY="bench-fleet-not-a-secret-" + "x" * 20,
        DEBUG="0",
        ALPHA_DATA_DIR=data_dir,
        DATABASE_URL=database_url,
        TIME_ZONE="UTC",
        ALPHA_ROLE="central",
        LOG_LEVEL="WARNING",
        ALPHA_POLL_CONCURRENCY=str(args.concurrency),
        ALPHA_POLL_CONNECT_TIMEOUT=str(args.connect_timeout),
        ALPHA_POLL_READ_TIMEOUT=str(args.read_timeout),
        ALPHA_BACKFILL_DAYS=str(BACKFILL_DAYS),
    )
    return env


def fresh_database(work: str, label: str, backend: str, args, cfg: dict) -> tuple[str, dict, str | None]:
    """A migrated database with the fleet's Host rows: (url, env, postgres url to drop)."""
    data_dir = os.path.join(work, label)
    os.makedirs(data_dir, exist_ok=True)
    pg = None
    if backend == "sqlite":
        url = f"sqlite:///{os.path.join(data_dir, 'db.sqlite3')}"
    else:
        pg, reason = create_postgres("alpha_fleet")
        if pg is None:
            raise RuntimeError(reason)
        url = pg
    env = poller_env(data_dir, url, args)
    manage("migrate", "-v0", env=env)
    child("_setup", cfg, env)
    return url, env, pg


def check(result: dict, label: str, failures: list[str]) -> str:
    line = (
        f"answering {result['answering_ok']}/{result['answering']} exact "
        f"({result['days']:,} days, {result['sources']:,} sources, {result['logins']:,} logins), "
        f"silent {result['silent_ok']}/{result['silent']} as expected, states {result['states']}"
    )
    if result["n_problems"]:
        failures.append(f"{label}: {result['n_problems']} hosts wrong, e.g. {result['problems'][:3]}")
        line += f"  WRONG: {result['n_problems']} hosts"
    return line


def alert_line(res: dict, round_seconds: float) -> str:
    """The rules' cost beside the round's (target: under a tenth of it)."""
    each = ", ".join(
        f"{kind} {1000 * r['seconds']:.0f} ms ({r['findings']} found, {r['queries']} queries)"
        for kind, r in res["rules"].items()
    )
    ratio = max(res["first"], res["repeat"]) / round_seconds
    return (
        f"evaluate() {res['first']:.2f} s first ({res['alerts']} alerts), {res['repeat']:.2f} s next round, "
        f"deliver_due() {1000 * res['deliver']:.0f} ms; {ratio:.3f} of the round "
        f"({'MET' if ratio < ALERT_TARGET else 'MISSED'}: < {ALERT_TARGET:g}); rules alone: {each}"
    )


def run_round(label: str, env: dict, sim: subprocess.Popen, work: str) -> dict:
    cpu0, busy0 = proc_cpu(sim.pid), machine_busy()
    # BENCH_FLEET_WRAP: a command line to run the round under, e.g. "py-spy record -o r1.txt --".
    wrap = os.environ.get("BENCH_FLEET_WRAP", "").split()
    timed = run_timed([*wrap, PYTHON, MANAGE, "poll_hosts", "--once"], env=env)
    sim_cpu = proc_cpu(sim.pid) - cpu0
    others = machine_busy() - busy0 - sim_cpu - timed.cpu_seconds
    m = re.search(r"Polled in ([\d.]+) s: (.*)\.", timed.stdout)
    lines = [line for line in timed.stderr.splitlines() if line.strip()]
    unexpected = sum("failed unexpectedly" in line for line in lines)
    locked = sum(line.startswith("django.db.utils.OperationalError: database is locked") for line in lines)
    crashed = timed.returncode != 0
    if crashed or lines:
        with open(os.path.join(work, f"{label}-stderr.txt"), "w") as f:
            f.write(timed.stderr)
    summary = m.group(2) if m else timed.stdout.strip()
    if crashed:
        last = lines[-1] if lines else ""
        summary = f"ROUND ABORTED (exit {timed.returncode}) after {timed.seconds:.1f} s: {last[:160]}"
    return {
        "round": float(m.group(1)) if m else timed.seconds,
        "summary": summary,
        "crashed": crashed,
        "wall": timed.seconds,
        "cpu": timed.cpu_seconds,
        "rss": timed.max_rss_mb,
        "sim_cpu": sim_cpu,
        "others": others,
        "stderr_lines": len(lines),
        "unexpected": unexpected,
        "locked": locked,
    }


# --------------------------------------------------------------------------------------------
# The Celery path (--celery K): workers on a private Redis database, rounds fanned out by
# poll_all_hosts as the beat would
# --------------------------------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379"
REDIS_CLAIM_KEY = "alpha:bench-fleet:claimed"
CELERY = os.path.join(os.path.dirname(PYTHON), "celery")
HOST_TABLE = "inventory_app_host"


def claim_redis_db(hold: float):
    """An empty database on the local Redis server, held for one Celery phase, found the way
    inventory_app/tests/test_tasks.py's claim_redis_db finds one: SET a claim key NX with an
    expiry on databases 15..1 and take the first that then holds that key only. Returns
    (broker url, redis client)."""
    import redis

    try:
        redis.Redis.from_url(f"{REDIS_URL}/0", socket_connect_timeout=3, socket_timeout=5).ping()
        for db in range(15, 0, -1):
            client = redis.Redis.from_url(f"{REDIS_URL}/{db}", socket_connect_timeout=3, socket_timeout=30)
            try:
                if client.set(REDIS_CLAIM_KEY, os.getpid(), nx=True, ex=int(hold)):
                    if client.dbsize() == 1:
                        return f"{REDIS_URL}/{db}", client
                    client.delete(REDIS_CLAIM_KEY)  # in use by something else: not ours to flush
            except redis.ResponseError:
                pass  # the server has fewer databases
            client.close()
    except redis.RedisError as exc:
        raise RuntimeError(f"Redis is not usable at {REDIS_URL}: {exc}") from None
    raise RuntimeError(f"no empty database on {REDIS_URL}")


def tasks_left(client) -> int:
    """Messages still queued (any queue list) or delivered and not acknowledged."""
    waiting = sum(client.llen(key) for key in client.scan_iter("celery*") if client.type(key) == b"list")
    return waiting + client.hlen("unacked")


def proc_rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process, from /proc/PID/status."""
    found = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name = line.split(None, 1)[0] if line.strip() else ""
                if name in found:
                    found[name] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return found["VmRSS:"], found["VmHWM:"]


class Workers:
    """K `celery worker --pool threads` processes with the poller's environment, logging to files."""

    def __init__(self, k: int, concurrency: int, env: dict, log_dir: str, label: str):
        self.names = [f"bench{i}" for i in range(1, k + 1)]
        self.logs = [os.path.join(log_dir, f"{label}-{name}.log") for name in self.names]
        self.offsets = [0] * k
        self.procs: list[subprocess.Popen] = []
        for name, path in zip(self.names, self.logs, strict=True):
            with open(path, "w") as log:
                self.procs.append(
                    subprocess.Popen(
                        [CELERY, "-A", "alphaproject", "worker", "--pool", "threads",
                         "--concurrency", str(concurrency), "-l", "warning", "--without-mingle",
                         "--without-gossip", "-n", f"{name}@%h"],
                        env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip

    def dead(self) -> str:
        for name, proc, path in zip(self.names, self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                with open(path) as f:
                    tail = [line for line in f.read().splitlines() if line.strip()][-3:]
                return f"worker {name} exited with code {proc.returncode}: {' | '.join(tail)[:400]}"
        return ""

    def wait_ready(self, app, limit: float = 120) -> float:
        """Until every worker answers a ping (its consumer is running). Returns the seconds."""
        started = time.perf_counter()
        while True:
            if why := self.dead():
                raise RuntimeError(why)
            replies = app.control.ping(timeout=1.0)
            seen = {name.split("@", 1)[0] for reply in replies for name in reply}
            if seen >= set(self.names):
                return time.perf_counter() - started
            if time.perf_counter() - started > limit:
                raise RuntimeError(f"workers not ready after {limit:.0f} s (answered: {sorted(seen)})")

    def cpu(self) -> list[float]:
        # utime + stime of each worker process: its pool's threads included.
        return [proc_cpu(proc.pid) for proc in self.procs]

    def new_log_lines(self) -> list[str]:
        """Lines the workers logged since the last call (warnings and errors: -l warning)."""
        lines = []
        for i, path in enumerate(self.logs):
            with open(path) as f:
                f.seek(self.offsets[i])
                text = f.read()
                self.offsets[i] = f.tell()
            lines += [f"{self.names[i]}: {line}" for line in text.splitlines() if line.strip()]
        return lines

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm shutdown: running polls finish
        deadline = time.monotonic() + 30
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Progress:
    """How far a Celery round is, read straight from the database every 0.2 s (one connection)."""

    def __init__(self, database_url: str):
        p = "?" if database_url.startswith("sqlite:///") else "%s"
        self.sql = (
            f"SELECT COALESCE(SUM(CASE WHEN last_poll_at IS NULL OR last_poll_at < {p} "
            f"OR polling_since IS NOT NULL THEN 1 ELSE 0 END), 0), COUNT(*), MAX(last_poll_at) FROM {HOST_TABLE}"
        )
        if p == "?":
            import sqlite3

            path = database_url[len("sqlite:///") :]
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        else:
            import psycopg

            self.conn = psycopg.connect(database_url, autocommit=True)
        self.sqlite = p == "?"

    def __call__(self, t0: datetime) -> tuple[int, int, datetime | None]:
        """(hosts not done, hosts, latest last_poll_at): a host is done once it was polled since t0
        and its poll released it (polling_since back to NULL, after the result was saved)."""
        if self.sqlite:
            # Django stores SQLite datetimes as naive UTC text ("YYYY-MM-DD HH:MM:SS[.ffffff]").
            # fetchall: the statement runs to its end, so no read snapshot stays open.
            ((left, total, latest),) = self.conn.execute(
                self.sql, (str(t0.astimezone(UTC).replace(tzinfo=None)),)
            ).fetchall()
            return left, total, datetime.fromisoformat(latest).replace(tzinfo=UTC) if latest else None
        ((left, total, latest),) = self.conn.execute(self.sql, (t0,)).fetchall()
        return left, total, latest

    def close(self) -> None:
        self.conn.close()


def celery_phase(backend: str, args, cfg: dict, sim: subprocess.Popen, work: str, to_drop: list[str],
                 failures: list[str]) -> dict:  # fmt: skip
    """R1..R{--rounds} through Celery workers on a fresh database; returns {"R1": result, ...}."""
    from celery import Celery

    tag = f"{backend} celery {args.celery}x{args.celery_concurrency}"
    try:
        url, env, pg = fresh_database(work, f"celery-{backend}", backend, args, cfg)
    except RuntimeError as exc:
        print(f"[{tag}] skipped: {exc}")
        return {}
    if pg:
        to_drop.append(pg)
    try:
        broker, client = claim_redis_db(args.sim_lifetime)
    except RuntimeError as exc:
        print(f"[{tag}] skipped: {exc}")
        return {}
    env = {**env, "CELERY_BROKER_URL": broker}
    app = Celery("bench-fleet", broker=broker)  # only to ping the workers and send the task
    app.conf.broker_connection_retry_on_startup = True
    results: dict = {}
    workers = progress = None
    try:
        progress = Progress(url)
        workers = Workers(args.celery, args.celery_concurrency, env, work, f"celery-{backend}")
        took = workers.wait_ready(app)
        startup = workers.new_log_lines()
        print(
            f"[{tag}] {args.celery} workers ready in {took:.1f} s (broker {broker}; "
            f"{len(startup)} start-up log lines, in {work}/celery-{backend}-bench*.log)"
        )
        for r in range(1, args.rounds + 1):
            gen = 0 if r == 1 else 1
            http_get(cfg["port"], f"/_ctl/gen/{gen}")
            client.expire(REDIS_CLAIM_KEY, int(args.sim_lifetime))
            quiet = wait_quiet(args.wait_quiet, sim.pid)
            workers.new_log_lines()  # only what the round logs counts
            cpu0, sim0, busy0 = workers.cpu(), proc_cpu(sim.pid), machine_busy()
            t0 = datetime.now(UTC)
            w0 = time.perf_counter()
            # What the beat does every ALPHA_POLL_INTERVAL: send poll_all_hosts by name; a worker
            # runs it and fans out one poll_host task per enabled host (group().apply_async()).
            app.send_task("inventory_app.poll_all_hosts")
            problem, left, total, latest, idle = "", -1, 0, None, 0
            while True:
                time.sleep(0.2)
                left, total, latest = progress(t0)
                if left == 0:
                    break
                # A poll_host task that fails before it records anything on its host (e.g. the
                # database refused the connection) leaves the host undone: no task left is a stall.
                idle = 0 if tasks_left(client) else idle + 1
                problem = workers.dead() or ("no task queued or running for 2 s" if idle >= 10 else "")
                if not problem and time.perf_counter() - w0 > args.celery_limit:
                    problem = f"not finished after {args.celery_limit:.0f} s"
                if problem:
                    break
            seconds = time.perf_counter() - w0
            cpus = [c1 - c0 for c0, c1 in zip(cpu0, workers.cpu(), strict=True)]
            sim_cpu = proc_cpu(sim.pid) - sim0
            others = machine_busy() - busy0 - sim_cpu - sum(cpus)
            lines = workers.new_log_lines()
            res = {
                "round": seconds,
                "last_write": (latest - t0).total_seconds() if latest else float("nan"),
                "crashed": bool(problem),
                "cpu": sum(cpus),
                "worker_cpu": cpus,
                "rss": [proc_rss_mb(p.pid) for p in workers.procs],
                "sim_cpu": sim_cpu,
                "others": others,
                "log_lines": len(lines),
                "errors": sum(" ERROR" in line or "Traceback" in line for line in lines),
                "unexpected": sum("failed unexpectedly" in line for line in lines),
                "locked": sum("database is locked" in line for line in lines),
            }
            if lines:
                with open(os.path.join(work, f"celery-{backend}-R{r}-log.txt"), "w") as f:
                    f.write("\n".join(lines) + "\n")
            res["verify"] = child("_verify", {**cfg, "gen": gen, "failures": r, "numbers": list(range(1, args.hosts + 1))}, env)  # fmt: skip
            results[f"R{r}"] = res
            states = ", ".join(f"{n} {s}" for s, n in sorted(res["verify"]["states"].items()))
            summary = (
                f"ROUND DID NOT FINISH: {problem} ({left} of {total} hosts not done)" if problem else states
            )
            what = {1: "first poll", 2: "today grew", 3: "nothing changed"}[r]
            print(
                f"[{tag}] R{r} ({what}): round {seconds:.2f} s ({args.hosts / seconds:.0f} hosts/s; "
                f"last host saved at +{res['last_write']:.2f} s; workers cpu {res['cpu']:.1f} s "
                f"({' + '.join(f'{c:.1f}' for c in cpus)}), RSS {' + '.join(f'{m[0]:.0f}' for m in res['rss'])} MB "
                f"(peak {' + '.join(f'{m[1]:.0f}' for m in res['rss'])}); simulator cpu {sim_cpu:.1f} s, "
                f"rest of the machine {others:.1f} s) -> {summary} {quiet}"
            )
            print(f"    check: {check(res['verify'], f'{tag} R{r}', failures)}")
            if lines:
                first = next((line for line in lines if " ERROR" in line or "Error" in line), lines[0])
                print(
                    f"    worker logs: {len(lines)} lines, {res['errors']} errors/tracebacks, {res['unexpected']} "
                    f"hosts 'failed unexpectedly', {res['locked']} 'database is locked' (first: {first[:200]})"
                )
            if problem:
                failures.append(f"{tag} R{r}: the round did not finish: {problem}")
                if r < args.rounds:
                    print(f"    [{tag}] later rounds skipped: this round did not finish")
                break
    except RuntimeError as exc:
        failures.append(f"{tag}: {exc}")
        print(f"[{tag}] FAILED: {exc}")
    finally:
        try:
            if workers is not None and tasks_left(client):
                client.flushdb()  # stopping workers must not take (or give back) leftover polls
        finally:
            if workers is not None:
                workers.stop()
            if progress is not None:
                progress.close()
            app.close()
            try:
                client.flushdb()
            finally:
                client.close()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--silent-share", type=float, default=0.10)
    ap.add_argument("--days", type=int, default=2, help="days of data per host, ending today (30: backfill)")
    ap.add_argument("--sources", default="200-400", help="sources per host and day, MIN-MAX")
    ap.add_argument("--page-size", type=int, default=250, help="the simulator's largest page")
    ap.add_argument(
        "--next-with-prefix",
        action="store_true",
        help="next links keep the /h/N prefix (agent behind a path proxy)",
    )
    ap.add_argument("--concurrency", type=int, default=64, help="ALPHA_POLL_CONCURRENCY")
    ap.add_argument("--connect-timeout", type=float, default=3.0, help="ALPHA_POLL_CONNECT_TIMEOUT")
    ap.add_argument("--read-timeout", type=float, default=10.0, help="ALPHA_POLL_READ_TIMEOUT")
    ap.add_argument(
        "--rounds", type=int, default=3, choices=[0, 1, 2, 3], help="R1..RN (poll_hosts and Celery)"
    )
    ap.add_argument("--seq-silent", type=int, default=5, help="silent hosts polled in the sequential run")
    ap.add_argument("--no-sequential", action="store_true")
    ap.add_argument("--no-bare", action="store_true", help="no bare asyncio baseline before R1 and R3")
    ap.add_argument("--seq-backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--postgres", action="store_true", help="rounds on PostgreSQL instead of SQLite")
    ap.add_argument("--both", action="store_true", help="rounds on SQLite and on PostgreSQL")
    ap.add_argument(
        "--celery", type=int, default=0, metavar="K", help="also the rounds through K Celery workers (0: off)"
    )
    ap.add_argument(
        "--celery-concurrency", type=int, default=32, metavar="C", help="threads per Celery worker"
    )
    ap.add_argument("--celery-only", action="store_true", help="with --celery: no poll_hosts rounds")
    ap.add_argument(
        "--celery-limit",
        type=float,
        default=1800,
        help="a Celery round not done after this many s is a failure",
    )
    ap.add_argument(
        "--wait-quiet", type=float, default=180, help="max s to wait for an idle machine before a timed phase"
    )
    ap.add_argument("--sim-lifetime", type=float, default=3600, help="the simulator stops after this")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (databases)")
    args = ap.parse_args()
    lo, hi = (int(x) for x in args.sources.split("-"))

    started_at = datetime.now(UTC)
    today = started_at.date()
    cfg = {
        "until": started_at.hour * 3600 + started_at.minute * 60 + started_at.second,
        "hosts": args.hosts,
        "silent_share": args.silent_share,
        "days": args.days,
        "sources_min": lo,
        "sources_max": hi,
        "page_size": args.page_size,
        "today": today.isoformat(),
        "lifetime": args.sim_lifetime,
        "next_prefix": args.next_with_prefix,
    }
    silent = silent_hosts(args.hosts, args.silent_share)
    answering = [n for n in range(1, args.hosts + 1) if n not in silent]
    backends = ["sqlite", "postgresql"] if args.both else ["postgresql"] if args.postgres else ["sqlite"]
    os.makedirs(OUT_DIR, exist_ok=True)
    work = tempfile.mkdtemp(prefix="fleet-", dir=OUT_DIR)
    failures: list[str] = []
    to_drop: list[str] = []
    report: dict = {}
    print(
        f"fleet: {args.hosts} hosts ({len(silent)} silent), {args.days} day(s) each ending {today} (UTC), "
        f"{lo}-{hi} sources/day, simulator pages of <= {args.page_size}; poller: "
        f"ALPHA_POLL_CONCURRENCY={args.concurrency}, connect {args.connect_timeout:g} s, "
        f"read {args.read_timeout:g} s, {os.cpu_count()} CPUs"
        + (f"; Celery: {args.celery} workers x {args.celery_concurrency} threads" if args.celery else "")
    )
    git = subprocess.run(
        ["git", "-C", PROJECT_DIR, "log", "-1", "--format=%h %cI"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [
            "git",
            "-C",
            PROJECT_DIR,
            "status",
            "--porcelain",
            "--",
            "inventory_app",
            "alphaproject",
            "collector",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"code: commit {git or 'unknown (not a git checkout)'}{' + uncommitted changes' if dirty else ''}")
    started = time.perf_counter()
    sim = subprocess.Popen(
        [PYTHON, __file__, "_serve", json.dumps(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=PROJECT_DIR,
        text=True,
    )
    try:
        ready = sim.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError(f"the simulator did not start: {ready}")
        port = int(ready[1])
        cfg["port"] = port
        print(f"simulator: pid {sim.pid}, port {port}, data built in {ready[2]} s")

        for backend in backends if not args.celery_only else []:
            try:
                url, env, pg = fresh_database(work, f"rounds-{backend}", backend, args, cfg)
            except RuntimeError as exc:
                print(f"[{backend}] skipped: {exc}")
                continue
            if pg:
                to_drop.append(pg)
            rounds = report.setdefault(backend, {})
            for r in range(1, args.rounds + 1):
                gen = 0 if r == 1 else 1
                http_get(port, f"/_ctl/gen/{gen}")
                bare = None
                if r in (1, 3) and not args.no_bare:
                    quiet = wait_quiet(args.wait_quiet, sim.pid)
                    s0 = http_get(port, "/_ctl/stats")
                    bare = child("_bare", {**cfg, "round": r, "concurrency": args.concurrency,
                                           "connect_timeout": args.connect_timeout,
                                           "read_timeout": args.read_timeout}, env)  # fmt: skip
                    bare["served"] = stats_delta(s0, http_get(port, "/_ctl/stats"))
                    print(
                        f"[{backend}] bare baseline for R{r} (stdlib asyncio, same requests, nothing "
                        f"stored): {bare['seconds']:.2f} s (cpu {bare['cpu']:.1f} s; {bare['ok']} hosts "
                        f"answered, {bare['timed_out']} timed out, {bare['failed']} failed; "
                        f"{bare['requests']:,} answers, {bare['bytes'] / 1e6:.1f} MB, {bare['days']} days, "
                        f"{bare['sources']:,} sources, {bare['logins']:,} logins) {quiet}"
                    )
                    for error in bare["errors"]:
                        print(f"    bare baseline error: {error}")
                quiet = wait_quiet(args.wait_quiet, sim.pid)
                s0 = http_get(port, "/_ctl/stats")
                res = run_round(f"{backend}-R{r}", env, sim, work)
                res["served"] = stats_delta(s0, http_get(port, "/_ctl/stats"))
                if bare is not None:
                    res["bare"] = bare
                res["verify"] = child("_verify", {**cfg, "gen": gen, "failures": r, "numbers": list(range(1, args.hosts + 1))}, env)  # fmt: skip
                rounds[f"R{r}"] = res
                what = {1: "first poll", 2: "today grew", 3: "nothing changed"}[r]
                print(
                    f"[{backend}] R{r} ({what}): round {res['round']:.2f} s "
                    f"({args.hosts / res['round']:.0f} hosts/s; process {res['wall']:.2f} s, "
                    f"cpu {res['cpu']:.1f} s, peak RSS {res['rss']:.0f} MB; simulator cpu {res['sim_cpu']:.1f} s, "
                    f"rest of the machine {res['others']:.1f} s) "
                    f"-> {res['summary']} {quiet}"
                )
                print(f"    check: {check(res['verify'], f'{backend} R{r}', failures)}")
                if bare is not None:
                    same = "the same" if bare["served"] == res["served"] else "DIFFERENT"
                    print(
                        f"    vs bare baseline: {res['round'] / bare['seconds']:.2f}x its {bare['seconds']:.2f} s; "
                        f"requests served: {same} (poller {res['served']}, baseline {bare['served']})"
                    )
                if res["stderr_lines"]:
                    print(
                        f"    poller stderr: {res['stderr_lines']} lines, {res['unexpected']} hosts 'failed "
                        f"unexpectedly', {res['locked']} 'database is locked' tracebacks"
                    )
                if not res["crashed"]:
                    res["alerts"] = child("_evaluate", cfg, env)
                    print(f"    alerts: {alert_line(res['alerts'], res['round'])}")
                if res["crashed"]:
                    failures.append(f"{backend} R{r}: poll_hosts --once aborted the round: {res['summary']}")
                    if r < args.rounds:
                        print(f"    [{backend}] later rounds skipped: this round was aborted")
                    break

        if args.celery and args.rounds:
            for backend in backends:
                report[f"celery-{backend}"] = celery_phase(backend, args, cfg, sim, work, to_drop, failures)

        if not args.no_sequential:
            sb = args.seq_backend
            url, env, pg = fresh_database(work, "sequential", sb, args, cfg)
            if pg:
                to_drop.append(pg)
            sample_silent = sorted(silent)[: args.seq_silent]
            seq = {}
            for p, gen in ((1, 0), (2, 1)):
                http_get(port, f"/_ctl/gen/{gen}")
                numbers = sorted(answering + (sample_silent if p == 1 else []))
                quiet = wait_quiet(args.wait_quiet, sim.pid)
                busy0, cpu0 = machine_busy(), proc_cpu(sim.pid)
                res = child("_seq", {**cfg, "numbers": numbers}, env)
                others = machine_busy() - busy0 - (proc_cpu(sim.pid) - cpu0) - res["cpu"]
                res["verify"] = child("_verify", {**cfg, "gen": gen, "failures": 1, "numbers": numbers}, env)
                seq[p] = res
                silent_times = seq[1]["silent"]
                mean_silent = sum(silent_times) / len(silent_times) if silent_times else 0.0
                measured = sum(res["answering"])
                total = measured + len(silent) * mean_silent
                res["total"] = total
                print(
                    f"[{sb}] sequential pass {p} (same work as R{p}): {len(res['answering'])} answering hosts "
                    f"measured {measured:.2f} s ({len(res['answering']) / measured:.1f} hosts/s, "
                    f"{1000 * measured / len(res['answering']):.1f} ms each, cpu {res['cpu']:.1f} s)"
                    + (
                        f"; {len(silent_times)} silent hosts measured {sum(silent_times):.2f} s "
                        f"({mean_silent:.2f} s each)"
                        if p == 1
                        else f"; silent hosts' time from pass 1 ({mean_silent:.2f} s each)"
                    )
                    + f"; EXTRAPOLATED total for all {args.hosts}: {measured:.1f} + {len(silent)} x "
                    f"{mean_silent:.2f} = {total:.0f} s (rest of the machine meanwhile: cpu {others:.1f} s) {quiet}"
                )
                print(f"    check: {check(res['verify'], f'sequential {p}', failures)}")
                for backend in backends:
                    rr = report.get(backend, {}).get(f"R{p}")
                    if rr:
                        print(
                            f"    ratio sequential ({sb}) / concurrent R{p} ({backend}"
                            f"{', ABORTED' if rr['crashed'] else ''}): {total / rr['round']:.1f}x; "
                            f"answering hosts alone: {measured:.1f} s sequential"
                        )
            report["sequential"] = seq

        # Summary: the target, per backend and path (poll_hosts, Celery) polled with the code as it is
        paths = [(b, b) for b in backends]
        paths += [(f"celery-{b}", f"{b}, Celery {args.celery}x{args.celery_concurrency}") for b in backends]
        for key, name in paths:
            if not report.get(key, {}).get("R1"):
                continue
            r1 = report[key]["R1"]
            ok1 = not r1["verify"]["n_problems"] and not r1["crashed"]
            down = r1["verify"]
            marked_down = down["silent_ok"] == down["silent"]
            met = r1["round"] <= TARGET_SECONDS and ok1 and marked_down
            print(
                f"TARGET ({name}): R1 {r1['round']:.1f} s (<= {TARGET_SECONDS:.0f} s: "
                f"{r1['round'] <= TARGET_SECONDS}), answering hosts all exact: {ok1}, silent ones down "
                f"after R1: {marked_down} -> {'MET' if met else 'MISSED'}"
            )
        for backend in backends:
            for r, limit in ((1, BARE_R1_TARGET), (3, BARE_R3_TARGET)):
                rr = report.get(backend, {}).get(f"R{r}")
                if rr and "bare" in rr:
                    ratio = rr["round"] / rr["bare"]["seconds"]
                    print(
                        f"TARGET ({backend}, vs bare baseline): R{r} {rr['round']:.2f} s / baseline "
                        f"{rr['bare']['seconds']:.2f} s = {ratio:.2f}x (<= {limit:g}x) -> "
                        f"{'MET' if ratio <= limit else 'MISSED'}"
                    )
        if datetime.now(UTC).date() != today:
            failures.append("the run crossed midnight UTC: the days moved; run again")
    finally:
        try:
            sim.stdin.close()
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.terminate()
            sim.wait()
        for url in to_drop:
            drop_postgres(url)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    print(f"total benchmark time {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"CORRECTNESS FAILURE: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1].startswith("_"):
        mode, cfg = sys.argv[1], json.loads(sys.argv[2])
        {
            "_serve": serve_main,
            "_setup": setup_main,
            "_verify": verify_main,
            "_seq": sequential_main,
            "_evaluate": evaluate_main,
            "_bare": bare_main,
        }[mode](cfg)
    else:
        sys.exit(main())
