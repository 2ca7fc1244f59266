"""Agent API under load: `GET /api/v1/logins/<day>/` served by gunicorn, on a busy host's data.

    .venv/bin/python bench/bench_api.py [--postgres | --both] [--duration 15] [--connections 16]
                                        [--config 3x2] [--loader wrk|python] [--keep]

In one run, per database backend (SQLite by default; PostgreSQL with --postgres, both with --both):
  1. a fresh database (SQLite file in a temp dir under bench/out/, or a fresh PostgreSQL database
     postgres://postgres@127.0.0.1:5432/<random name>, dropped at the end), migrated, then filled
     with 30 days of a busy host: per day one DailyCount, 3,000-5,000 DailySource (Pareto-skewed
     sessions), ~500 DailyUser, a few DailyEvent; one LogSource. Done in a child process that
     sets up Django (so one run can use two databases) and writes the expected API answers;
  2. an in-process profile of the view (Django's WSGI handler, as gunicorn calls it, DEBUG off):
     queries per request, time per query, the rest (Python), and each query's plan;
  3. gunicorn on 127.0.0.1:<free port>, DEBUG off, the bearer token set. Unless --config is
     given, a few worker/thread configurations are measured briefly (interleaved, best of 2)
     and the best one is kept: the highest requests/s among those with p99 under the target
     (else the lowest p99);
  4. a correctness check (every one of the 30 days must equal what was seeded; no token -> 401),
     then a warm-up and a fixed-duration closed-loop load from a second process (wrk when
     installed, else a Python keep-alive load generator), round-robin over the 30 days;
  5. gunicorn stopped, the database and temp dir removed (unless --keep).

Targets (reported MET / MISSED, they never change the exit code): >= 500 requests/s and
p99 < 50 ms. Exit 1 if a correctness check fails (a wrong body, or any non-200 under load).
The load generator shares the machine's 2 cores with the server (a real caller, the central
server, would not); wrk is used because it costs little CPU (~0.05 cores at 500 req/s). The
CPU used by gunicorn, the PostgreSQL backends, the loader and everything else is reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

from common import create_postgres, drop_postgres

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(BENCH_DIR)
OUT_DIR = os.path.join(BENCH_DIR, "out")  # git-ignored
VENV_BIN = os.path.join(PROJECT_DIR, ".venv", "bin")
PYTHON = (
    os.path.join(VENV_BIN, "python") if os.path.exists(os.path.join(VENV_BIN, "python")) else sys.executable
)
GUNICORN = os.path.join(VENV_BIN, "gunicorn")
MANAGE = os.path.join(PROJECT_DIR, "manage.py")

DAYS = 30
HOST_NAME = "bench-host"
TARGET_RPS = 500
TARGET_P99_MS = 50.0
# CPU (in cores) that other processes may take during a measurement before it counts as
# disturbed (the server alone can use both cores; every bit taken shows in the numbers).
OTHER_MAX = 0.25
# Candidate gunicorn configurations, "WORKERSxTHREADS". On 2 cores: one sync worker per core,
# twice that (hides the time a worker waits on the database), gunicorn's documented 2n+1, and
# gthread (threads overlap the I/O waits; keep-alive works with gthread, not with sync).
DEFAULT_CANDIDATES = "2x1,4x1,5x1,3x2"


# --------------------------------------------------------------------------------------------
# Child process: seed the database and profile the view (needs Django set up on one database)
# --------------------------------------------------------------------------------------------

USER_POOL_BASE = [
    "root",
    "admin",
    "test",
    "user",
    "ubuntu",
    "oracle",
    "postgres",
    "guest",
    "git",
    "ftp",
    "deploy",
    "pi",
    "mysql",
    "support",
    "www-data",
    "hadoop",
    "jenkins",
    "ec2-user",
    "centos",
    "debian",
    "nagios",
    "tomcat",
    "elastic",
    "minecraft",
    "steam",
    "backup",
    "operator",
    "dev",
]


def top_distinct(values: list[int], k: int = 12) -> list[int]:
    """Sorted descending, with the first k strictly decreasing and above the rest: the API's top
    10 then has no ties, so its order does not depend on the database's collation of the
    tie-breaker (PostgreSQL's en_US collation does not sort IP text like Python does)."""
    values = sorted(values, reverse=True)
    for i in range(min(k, len(values))):
        values[i] += k - i  # values[i] >= values[i+1], so values[i]+k-i > values[i+1]+k-i-1
    return values


def random_ip(rng: random.Random) -> str:
    if rng.random() < 0.02:
        return f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"
    return f"{rng.randint(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"


def child_seed(truth_path: str, seed: int, end: date) -> None:
    """Fill the (migrated, empty) database; write the API answer expected for each day."""
    from django.conf import settings
    from django.db import connection

    from collector.contract import TALLIED
    from collector.models import DailyCount, DailyEvent, DailySource, DailyUser, LogSource

    rng = random.Random(seed)
    users_pool = USER_POOL_BASE + [f"{rng.choice(USER_POOL_BASE)}{rng.randrange(1000)}" for _ in range(2000)]
    users_pool = list(dict.fromkeys(users_pool))
    truth = {}
    started = time.perf_counter()
    n_sources = n_users = 0
    for offset in range(DAYS):
        day = end - timedelta(days=DAYS - 1 - offset)
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)

        # Sources: distinct addresses; sessions Pareto-distributed (a few campaigns make most
        # of the connections, most addresses knock once or twice).
        count = rng.randint(3000, 5000)
        ips: set[str] = set()
        while len(ips) < count:
            ips.add(random_ip(rng))
        sessions = top_distinct([min(20000, int(rng.paretovariate(1.1))) for _ in range(count)])
        sources = []
        for ip, s in zip(rng.sample(sorted(ips), count), sessions):
            if rng.random() < 0.01:  # a real user's address: logins, few failures
                accepted, failed = rng.randint(1, min(s, 20)), rng.randint(0, 2)
            else:
                accepted, failed = 0, s * rng.choice((0, 1, 1, 2, 3, 6))
            first = midnight + timedelta(seconds=rng.randrange(80000))
            last = first + timedelta(seconds=rng.randrange(86400 - (first - midnight).seconds))
            names = rng.sample(users_pool[:200], rng.randint(1, 5))
            sources.append(
                DailySource(
                    day=day,
                    ip=ip,
                    sessions=s,
                    failed_attempts=failed,
                    accepted=accepted,
                    first_seen=first,
                    last_seen=last,
                    users=names,
                )
            )
        DailySource.objects.bulk_create(sources, batch_size=2000)
        n_sources += len(sources)

        # Users: ~500 names a day, root/admin/... far ahead of the long tail.
        names = rng.sample(users_pool, rng.randint(450, 550))
        counts = top_distinct([min(50000, int(rng.paretovariate(0.9) * 3)) for _ in names])
        users = [
            DailyUser(
                day=day,
                user=name,
                sessions=c,
                failed_attempts=c * rng.randint(1, 3),
                accepted=rng.randint(1, 30) if name == "deploy" else 0,
            )
            for name, c in zip(names, counts)
        ]
        DailyUser.objects.bulk_create(users, batch_size=2000)
        n_users += len(users)

        # The day's totals agree with the sources; the session kinds split plausibly.
        total = sum(s.sessions for s in sources)
        accepted = sum(s.accepted for s in sources)
        failed_sessions = int(total * 0.62)
        row = DailyCount.objects.create(
            day=day,
            sessions=total,
            accepted=accepted,
            failed_attempts=sum(s.failed_attempts for s in sources),
            failed_sessions=failed_sessions,
            invalid_user_sessions=int(total * 0.41),
            preauth_only=total - failed_sessions - accepted,
        )
        kinds = ("invalid_user", "failed_password", "accepted_publickey", "disconnect_preauth", "unknown")
        DailyEvent.objects.bulk_create(
            DailyEvent(day=day, kind=k, count=rng.randint(1, 50000)) for k in kinds
        )

        # The answer the API must give for this day (same shape and order as counts.day_detail).
        top_s = sorted(sources, key=lambda s: (-s.sessions, -s.failed_attempts, s.ip))[:10]
        top_u = sorted(users, key=lambda u: (-u.sessions, -u.failed_attempts, u.user))[:10]
        answer = {"host": settings.ALPHA_HOST_NAME, "date": day.isoformat()}
        answer.update({name: getattr(row, name) for name in TALLIED})
        answer["unique_sources"] = len(sources)
        answer["top_sources"] = [
            {"ip": s.ip, "sessions": s.sessions, "failed_attempts": s.failed_attempts, "accepted": s.accepted}
            for s in top_s
        ]
        answer["top_users"] = [
            {
                "user": u.user,
                "sessions": u.sessions,
                "failed_attempts": u.failed_attempts,
                "accepted": u.accepted,
            }
            for u in top_u
        ]
        truth[day.isoformat()] = answer

    now = datetime.now(UTC)
    LogSource.objects.create(
        path="/var/log/auth.log",
        device=2049,
        inode=131074,
        fingerprint="0" * 64,
        fingerprint_size=4096,
        offset=987654321,
        size=987654321,
        lines_read=9876543,
        last_read_at=now,
        last_event_at=now,
    )
    if connection.vendor == "postgresql":
        # The state autovacuum brings a long-lived database to: statistics, visibility map
        # (index-only scans). Otherwise it would kick in during the measurement.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    with open(truth_path, "w") as f:
        json.dump(truth, f)
    print(
        f"seeded {DAYS} days: {n_sources:,} DailySource, {n_users:,} DailyUser rows "
        f"in {time.perf_counter() - started:.1f} s"
    )


def child_profile(days: list[str], token: str, rounds: int) -> None:
    """Where one request's time goes, in-process (no HTTP server): Django's WSGI handler called
    as gunicorn calls it (so the connection is closed/reused per CONN_MAX_AGE exactly as in
    production; the test client would keep it open), DEBUG off. Queries are timed with an
    execute_wrapper (exact, unlike connection.queries' rounded times)."""
    import io

    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    app = WSGIHandler()

    def get(path: str) -> str:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
        }
        status = []
        response = app(environ, lambda s, headers: status.append(s))
        b"".join(response)
        response.close()  # as a WSGI server does: fires request_finished
        return status[0]

    per_query: dict[int, list[float]] = {}
    sqls: dict[int, tuple[str, tuple]] = {}
    query_counts = []
    totals = []

    def timed_request(i: int) -> float:
        t0 = time.perf_counter()
        status = get(f"/api/v1/logins/{days[i % len(days)]}/")
        assert status.startswith("200"), status
        return time.perf_counter() - t0

    timings: list[float] = []  # this request's queries

    def wrapper(execute, sql, params, many, context):
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append(time.perf_counter() - t)
            sqls.setdefault(len(timings) - 1, (sql, params))

    for i in range(rounds + 30):
        timings.clear()
        with connection.execute_wrapper(wrapper):
            elapsed = timed_request(i)
        if i < 30:  # warm-up: imports, URL resolver, first connection
            continue
        totals.append(elapsed)
        query_counts.append(len(timings))
        for n, t in enumerate(timings):
            per_query.setdefault(n, []).append(t)

    ms = lambda xs: statistics.mean(xs) * 1000  # noqa: E731
    sql_total = sum(ms(v) for v in per_query.values())
    vendor = connection.vendor
    conn_age = connection.settings_dict.get("CONN_MAX_AGE")
    print(
        f"  {rounds} requests in-process: {ms(totals):.2f} ms mean per request (one core), "
        f"{statistics.mean(query_counts):.0f} queries per request, "
        f"CONN_MAX_AGE={conn_age} ({'a new connection every request' if not conn_age else 'kept'})"
    )
    for n in sorted(per_query):
        sql = " ".join(sqls[n][0].split())
        print(f"    q{n + 1}: {ms(per_query[n]):6.3f} ms in the database driver  {sql[:110]}...")
    print(
        f"    all queries in the driver: {sql_total:.2f} ms; the rest (Django, DRF, ORM query building, "
        f"JSON{', opening/closing the connection' if not conn_age else ''}): {ms(totals) - sql_total:.2f} ms"
    )
    if not conn_age:
        # What-if: the same requests with the connection kept between requests. A new SQLite
        # connection starts with an empty page cache and must parse the whole schema again.
        connection.close()
        connection.settings_dict["CONN_MAX_AGE"] = 60
        kept = [timed_request(i) for i in range(rounds + 30)][30:]
        connection.settings_dict["CONN_MAX_AGE"] = conn_age
        connection.close()
        print(f"    what-if CONN_MAX_AGE=60 (connection kept): {ms(kept):.2f} ms mean per request")
    print("  query plans:")
    with connection.cursor() as cursor:
        for n in sorted(sqls):
            sql, params = sqls[n]
            explain = (
                "EXPLAIN QUERY PLAN " if vendor == "sqlite" else "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
            )
            cursor.execute(explain + sql, params)
            rows = cursor.fetchall()
            lines = [r[-1] if vendor == "sqlite" else r[0] for r in rows]
            lines = [line for line in lines if not line.startswith(("Planning", "Execution"))]
            print(f"    q{n + 1}: " + " | ".join(s.strip() for s in lines))


def run_child(argv: list[str]) -> None:
    sys.path.insert(0, PROJECT_DIR)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alphaproject.settings")
    import django

    django.setup()
    if argv[0] == "seed":
        child_seed(argv[1], int(argv[2]), date.fromisoformat(argv[3]))
    elif argv[0] == "profile":
        child_profile(json.loads(argv[1]), argv[2], int(argv[3]))


# --------------------------------------------------------------------------------------------
# Parent: databases, gunicorn, load
# --------------------------------------------------------------------------------------------


def server_env(data_dir: str, token: str, database_url: str | None) -> dict:
    """Production-like settings: DEBUG off, a real SECRET_KEY and token, days in UTC, a private
    data dir; nothing from the caller's DATABASE_URL or ./data."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPHA_", "DATABASE_URL", "DJANGO_"))}
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALPHA_AGENT_TOKEN=token,
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",  # testserver: the in-process profile
        ALPHA_DATA_DIR=data_dir,
        ALPHA_HOST_NAME=HOST_NAME,
        TIME_ZONE="UTC",
        LOG_LEVEL="WARNING",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def run(cmd: list[str], env: dict, what: str, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{what} failed with exit code {proc.returncode}")
    return proc.stdout


def processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                found.append((int(entry), ppid, cmdline))
            except (OSError, ValueError, IndexError):
                pass
    return found


def postgres_backends(database: str) -> list[int]:
    """PostgreSQL backends show "postgres: USER DATABASE HOST(PORT) STATE" as their command line."""
    return [pid for pid, _, cmd in processes() if cmd.startswith("postgres: ") and f" {database} " in cmd]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (those that vanished count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle (user+nice+system+irq+softirq+steal), /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(max_wait: float) -> None:
    """Other work on this (2-core) machine takes cores from the server and skews every number:
    wait up to max_wait seconds for it to drop under OTHER_MAX cores, then go on with a warning."""
    deadline = time.monotonic() + max_wait
    while True:
        t, busy = time.monotonic(), machine_busy_seconds()
        time.sleep(2)
        load = (machine_busy_seconds() - busy) / (time.monotonic() - t)
        if load < OTHER_MAX:
            return
        if time.monotonic() > deadline:
            print(f"  WARNING: the machine is busy with other work ({load:.2f} cores): numbers will be low")
            return


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, token: str | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Gunicorn:
    """gunicorn in its own process group, stopped with SIGTERM (graceful), SIGKILL if stuck."""

    def __init__(
        self, env: dict, app: str, workers: int, threads: int, log_path: str, worker_class: str = ""
    ):
        self.port = free_port()
        # As scripts/run-agent.sh serves it (plus --threads): gthread when threads > 1 (gunicorn
        # picks it itself), and an access log line per request (there to stdout, here to a file).
        self.access_log = log_path.replace(".log", "-access.log")
        cmd = [
            GUNICORN,
            app,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--access-logfile",
            self.access_log,
            "--log-level",
            "warning",
            "--graceful-timeout",
            "10",
            *(["--worker-class", worker_class] if worker_class else []),
        ]
        self.log = open(log_path, "w")  # noqa: SIM115 (open while gunicorn runs, closed in stop())
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=PROJECT_DIR, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while True:  # ready when a worker answers (401 without token is an answer)
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.proc.returncode}, see {log_path}")
            try:
                http_get(self.port, "/api/v1/health/", None)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"gunicorn did not answer within 30 s, see {log_path}") from None
                time.sleep(0.1)

    def pids(self) -> list[int]:
        """The master and its workers (workers are its children)."""
        return [self.proc.pid] + [pid for pid, ppid, _ in processes() if ppid == self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own group: only what we started
                self.proc.wait()
        self.log.close()


WRK_LUA = r"""
-- Round-robin over the days; counts every non-200 (wrk itself only counts >= 400 as errors).
local paths = {%(paths)s}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) i = 0; non200 = 0 end
function request() i = (i %% #paths) + 1; return wrk.format("GET", paths[i]) end
function response(status, headers, body) if status ~= 200 then non200 = non200 + 1 end end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non200") end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "non200": %%d, ' ..
    '"socket_errors": %%d, "timeouts": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\n',
    summary.requests, summary.duration, bad, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def load_wrk(port: int, paths: list[str], token: str, seconds: float, connections: int, workdir: str) -> dict:
    script = os.path.join(workdir, "rotate.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA % {"paths": ", ".join(json.dumps(p) for p in paths)})
    # One wrk thread is plenty for ~1-2k req/s and leaves the CPU to the server.
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--timeout",
        "5s",
        "-H",
        f"Authorization: Bearer {token}",
        "-s",
        script,
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    r = json.loads(line[len("WRKJSON ") :])
    return {
        "requests": r["requests"],
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50": r["p50_us"] / 1000,
        "p90": r["p90_us"] / 1000,
        "p99": r["p99_us"] / 1000,
        "max": r["max_us"] / 1000,
        "non200": r["non200"],
        "errors": r["socket_errors"] + r["timeouts"],
    }


def load_python(
    port: int, paths: list[str], token: str, seconds: float, connections: int, workdir: str
) -> dict:
    """Fallback when wrk is missing: one thread per connection, HTTP/1.1 keep-alive (reconnect
    when the server closes, as gunicorn's sync workers do after every response). Runs in a
    separate process so its GIL is not the benchmark's. Less precise than wrk: the client's own
    CPU time on 2 cores shows up in the latencies."""
    code = f"""
import http.client, json, threading, time
paths, token, seconds, n = {paths!r}, {token!r}, {seconds!r}, {connections!r}
results = []
deadline = time.monotonic() + seconds
def worker(k):
    lat, non200, errors, conn, i = [], 0, 0, None, k
    while time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", {port}, timeout=5)
        t = time.perf_counter()
        try:
            conn.request("GET", paths[i % len(paths)], headers={{"Authorization": "Bearer " + token}})
            r = conn.getresponse(); r.read()
        except (OSError, http.client.HTTPException):
            errors += 1; conn.close(); conn = None; continue
        lat.append(time.perf_counter() - t); i += 1
        if r.status != 200: non200 += 1
        if r.will_close: conn.close(); conn = None
    results.append((lat, non200, errors))
start = time.monotonic()
threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
[t.start() for t in threads]; [t.join() for t in threads]
elapsed = time.monotonic() - start
lat = sorted(x for r in results for x in r[0])
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000
print(json.dumps({{"requests": len(lat), "rps": len(lat) / elapsed, "p50": pct(50), "p90": pct(90),
    "p99": pct(99), "max": lat[-1] * 1000, "non200": sum(r[1] for r in results), "errors": sum(r[2] for r in results)}}))
"""
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise SystemExit("python load generator failed:\n" + out.stderr)
    return json.loads(out.stdout)


def fmt(r: dict) -> str:
    return (
        f"{r['rps']:7.0f} req/s  p50 {r['p50']:6.2f} ms  p90 {r['p90']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
        f"max {r['max']:7.2f} ms  requests {r['requests']}  non-200 {r['non200']}  socket errors {r['errors']}"
        + (
            f"\n{'':8}CPU in cores (of {os.cpu_count()}): gunicorn {r['cpu_server']:.2f}"
            + (f", postgres backends {r['cpu_db']:.2f}" if r["cpu_db"] else "")
            + f", load generator {r['cpu_loader']:.2f}, everything else on the machine {r['cpu_other']:.2f}"
            f"; server{' + database' if r['cpu_db'] else ''} CPU per request {r['cpu_ms_per_request']:.2f} ms"
            if "cpu_server" in r
            else ""
        )
    )


def check_answers(port: int, token: str, truth: dict) -> list[str]:
    """Every day's body must equal what was seeded; and the token must be required."""
    problems = []
    for day, expected in truth.items():
        status, body = http_get(port, f"/api/v1/logins/{day}/", token)
        if status != 200:
            problems.append(f"{day}: HTTP {status}")
            continue
        got = json.loads(body)
        if got != expected:
            fields = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
            problems.append(f"{day}: differs in {', '.join(fields)}")
    status, _ = http_get(port, f"/api/v1/logins/{next(iter(truth))}/", None)
    if status != 401:
        problems.append(f"without a token: HTTP {status}, expected 401")
    return problems


def bench_backend(name: str, database_url: str | None, args, loader, workdir: str) -> dict:
    token = secrets.token_urlsafe(32)
    data_dir = os.path.join(workdir, name)
    os.makedirs(data_dir)
    env = server_env(data_dir, token, database_url)
    print(f"\n=== {name} ===")
    run([PYTHON, MANAGE, "migrate", "--noinput"], env, "migrate")
    # As run-agent.sh does before gunicorn: whitenoise serves from STATIC_ROOT (in the data dir).
    run([PYTHON, MANAGE, "collectstatic", "--noinput", "--verbosity", "0"], env, "collectstatic")
    truth_path = os.path.join(data_dir, "truth.json")
    end = date.today() - timedelta(days=1)
    print(
        "  "
        + run(
            [PYTHON, __file__, "--child", "seed", truth_path, str(args.seed), end.isoformat()], env, "seeding"
        ).strip()
    )
    with open(truth_path) as f:
        truth = json.load(f)
    days = list(truth)
    # One known body, printed so the report shows what is served.
    sample_day = days[len(days) // 2]
    print(
        f"  expected for {sample_day}: "
        + json.dumps({k: v for k, v in truth[sample_day].items() if not k.startswith("top_")})
    )
    if not args.no_profile:
        print("  profile (in-process, DEBUG off):")
        sys.stdout.write(
            run([PYTHON, __file__, "--child", "profile", json.dumps(days), token, "300"], env, "profile")
        )
    paths = [f"/api/v1/logins/{d}/" for d in days]
    result = {"backend": name, "correct": True, "problems": []}

    def measure(config: str, seconds: float, warmup: float, check: bool, retries: int) -> dict:
        """Start gunicorn with this config, (check bodies,) warm up, measure, stop it. On this
        shared machine a measurement that other work disturbed (> OTHER_MAX cores) is repeated,
        up to `retries` times; the least disturbed one is kept."""
        best = None
        for attempt in range(1 + retries):
            if attempt:
                print(f"    (other work took {best['cpu_other']:.2f} cores: measuring {config} again)")
            r = measure_once(config, seconds, warmup, check and not attempt)
            if best is None or r["cpu_other"] < best["cpu_other"]:
                best = r
            if best["cpu_other"] <= OTHER_MAX:
                break
        return best

    def measure_once(config: str, seconds: float, warmup: float, check: bool) -> dict:
        workers, threads = (int(x) for x in config.split("x"))
        wait_for_quiet(args.wait_quiet)
        server = Gunicorn(
            env,
            args.app,
            workers,
            threads,
            os.path.join(data_dir, f"gunicorn-{config}.log"),
            args.worker_class,
        )
        try:
            if check:
                problems = check_answers(server.port, token, truth)
                result["problems"] += problems
                print(
                    f"  correctness (30 days' bodies == seeded, 401 without token): "
                    f"{'OK' if not problems else 'FAILED: ' + '; '.join(problems[:5])}"
                )
            loader(server.port, paths, token, warmup, args.connections, data_dir)  # discarded
            # CPU accounting over the measured run: is the server CPU-bound, and did something
            # else on the machine take cores from it (the numbers are only comparable if not)?
            pids = server.pids()
            # PostgreSQL: the backends serving our database (connections are kept, CONN_MAX_AGE).
            db_pids = postgres_backends(database_url.rsplit("/", 1)[1]) if database_url else []

            def snapshot():
                return (
                    time.monotonic(),
                    machine_busy_seconds(),
                    cpu_seconds(pids),
                    cpu_seconds(db_pids),
                    children_cpu(),
                )

            before = snapshot()
            r = loader(server.port, paths, token, seconds, args.connections, data_dir)
            wall, busy, srv, db, ldr = (a - b for a, b in zip(snapshot(), before))
            r.update(
                cpu_server=srv / wall,
                cpu_db=db / wall,
                cpu_loader=ldr / wall,
                cpu_other=max(0.0, busy - srv - db - ldr) / wall,
                cpu_ms_per_request=(srv + db) * 1000 / max(1, r["requests"]),
            )
            return r
        finally:
            server.stop()

    if args.config:
        chosen = args.config
        print(f"  config: {chosen} (given)")
    else:
        # Interleaved rounds, best (highest req/s) per config: noise here (other work, a busy
        # VM host) only ever slows a run down, and interleaving spreads it over all configs.
        print(
            f"  choosing a config (workers x threads; {args.pick_seconds:g} s each, best of "
            f"{args.pick_rounds} interleaved rounds, {args.connections} connections):"
        )
        trials = {}
        for n in range(args.pick_rounds):
            for config in args.candidates.split(","):
                r = measure(config, args.pick_seconds, 2, check=False, retries=0)
                print(f"    {config:>4} #{n + 1}: {fmt(r)}")
                if config not in trials or r["rps"] > trials[config]["rps"]:
                    trials[config] = r
        # Only undisturbed trials are compared, if there are any (a disturbed one is too slow by
        # an unknown amount).
        clean = {c: r for c, r in trials.items() if r["cpu_other"] <= OTHER_MAX} or trials
        ok = {
            c: r for c, r in clean.items() if r["p99"] < TARGET_P99_MS and not r["non200"] and not r["errors"]
        }
        chosen = max(ok, key=lambda c: ok[c]["rps"]) if ok else min(clean, key=lambda c: clean[c]["p99"])
        why = "highest req/s with p99 under target" if ok else "no config met the p99 target: lowest p99"
        if len(clean) < len(trials):
            why += f"; not compared, disturbed by other work: {', '.join(sorted(set(trials) - set(clean)))}"
        print(f"  chosen: {chosen} ({why})")
        result["trials"] = trials

    final = measure(chosen, args.duration, args.warmup, check=True, retries=args.retries)
    result.update(final, config=chosen)
    if final["non200"] or final["errors"]:
        result["problems"].append(f"{final['non200']} non-200 responses, {final['errors']} socket errors")
    result["correct"] = not result["problems"]
    print(
        f"  final {chosen}, {args.duration:g} s after {args.warmup:g} s warm-up, "
        f"{args.connections} connections, loader {loader.__name__}:"
    )
    print(f"    {fmt(final)}")
    print(
        f"    >= {TARGET_RPS} req/s: {'MET' if final['rps'] >= TARGET_RPS else 'MISSED'};  "
        f"p99 < {TARGET_P99_MS:g} ms: {'MET' if final['p99'] < TARGET_P99_MS else 'MISSED'};  "
        f"correctness: {'OK' if result['correct'] else 'FAILED'}"
    )
    return result


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        run_child(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    which.add_argument("--both", action="store_true", help="SQLite, then PostgreSQL")
    ap.add_argument("--duration", type=float, default=15, help="seconds of measured load (15)")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of discarded load first (3)")
    ap.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (16)")
    ap.add_argument("--config", help="WORKERSxTHREADS, e.g. 3x2: skip choosing one")
    ap.add_argument("--candidates", default=DEFAULT_CANDIDATES, help=f"configs to try ({DEFAULT_CANDIDATES})")
    ap.add_argument("--pick-seconds", type=float, default=5, help="seconds per candidate run (5)")
    ap.add_argument("--pick-rounds", type=int, default=2, help="runs per candidate, interleaved (2)")
    ap.add_argument("--loader", choices=("wrk", "python"), help="default: wrk if installed")
    ap.add_argument(
        "--app",
        default="alphaproject.wsgi",
        help="WSGI module for gunicorn (to try a change without editing the project; "
        "PYTHONPATH is passed through)",
    )
    ap.add_argument(
        "--worker-class",
        default="",
        help="gunicorn's -k: asgi (with --app alphaproject.asgi) is what run-agent.sh serves",
    )
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=60,
        help="before each load, wait up to this many seconds for other work to stop (60)",
    )
    ap.add_argument(
        "--retries",
        type=int,
        default=2,
        help=f"repeat the final run if other work disturbed it (> {OTHER_MAX} cores), up to this many times (2)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite DB, logs)")
    args = ap.parse_args()

    if args.loader == "wrk" or (args.loader is None and shutil.which("wrk")):
        if not shutil.which("wrk"):
            raise SystemExit("wrk not found (apt-get install -y wrk), or use --loader python")
        loader = load_wrk
    else:
        print("wrk not found: using the Python load generator (apt-get install -y wrk for better numbers)")
        loader = load_python

    # SIGTERM (and SIGINT, which a shell leaves ignored in background jobs) unwind through the
    # finally blocks: gunicorn stopped (it runs in its own session), database dropped, dir removed.
    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)

    os.makedirs(OUT_DIR, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="api-", dir=OUT_DIR)
    print(f"{os.cpu_count()} CPUs; data and logs in {workdir}{' (kept)' if args.keep else ''}")
    results = []
    try:
        if not args.postgres:
            results.append(bench_backend("sqlite", None, args, loader, workdir))
        if args.postgres or args.both:
            url, reason = create_postgres("alpha_bench_api")
            if url is None:
                print(f"\n=== postgresql: skipped ({reason}) ===")
            else:
                try:
                    results.append(bench_backend("postgresql", url, args, loader, workdir))
                finally:
                    drop_postgres(url)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print("\nsummary:")
    for r in results:
        print(
            f"  {r['backend']:<10} {r['config']:>4}  {r['rps']:6.0f} req/s ({'MET' if r['rps'] >= TARGET_RPS else 'MISSED'})"
            f"  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms ({'MET' if r['p99'] < TARGET_P99_MS else 'MISSED'})"
            f"  non-200 {r['non200']}  correctness {'OK' if r['correct'] else 'FAILED'}"
            + (f"  DISTURBED (other work: {r['cpu_other']:.2f} cores)" if r["cpu_other"] > OTHER_MAX else "")
        )
    return 0 if all(r["correct"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
