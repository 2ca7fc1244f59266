"""Helpers shared by the benchmark scripts: paths, the agent's environment, timed subprocesses."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(BENCH_DIR)
OUT_DIR = os.path.join(BENCH_DIR, "out")  # git-ignored
PYTHON = os.path.join(PROJECT_DIR, ".venv", "bin", "python")
if not os.path.exists(PYTHON):
    PYTHON = sys.executable
MANAGE = os.path.join(PROJECT_DIR, "manage.py")
# The benchmarks read the project's contract (collector/contract.py, pure Python) for the names
# of the counts they check.
if PROJECT_DIR not in sys.path:
    sys.path.insert(0, PROJECT_DIR)
# The PostgreSQL the benchmarks use, as on CI: 127.0.0.1:5432, user postgres, trust auth;
# BENCH_PG_PORT picks another on loopback (a cluster of your own, with pg_stat_statements, say).
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_ADMIN_URL = f"postgresql://postgres@127.0.0.1:{PG_PORT}/postgres"


def agent_env(data_dir: str, database_url: str | None = None, **extra: str) -> dict:
    """Environment for manage.py: production settings (DEBUG off: no query log growing with every
    statement) with a throwaway SECRET_KEY, the agent's role (as deploy/alpha-agent.service runs
    it: the central apps are not imported, which is ~12 MB of peak RSS), a private data dir, days
    in UTC (the generated logs are in UTC), and SQLite unless a DATABASE_URL is given."""
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(
        DEBUG="0", SECRET_KEY=env.get("SECRET_KEY") or secrets.token_urlsafe(32), ALPHA_ROLE="agent",
        ALPHA_DATA_DIR=data_dir, TIME_ZONE="UTC", ALPHA_HOST_NAME="bench-host",
    )  # fmt: skip
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def manage(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a manage.py command (untimed helper: migrate, login_counts)."""
    proc = subprocess.run([PYTHON, MANAGE, *args], env=env, cwd=PROJECT_DIR, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"manage.py {' '.join(args)} failed with exit code {proc.returncode}")
    return proc


@dataclass
class Timed:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float  # user + system of the child
    max_rss_mb: float


def run_timed(cmd: list[str], *, env: dict | None = None, cwd: str | None = None) -> Timed:
    """Wall time of one subprocess, plus its own CPU time (wait4's rusage: this child only) and
    its peak RSS. The peak is VmHWM polled from /proc while it runs, not ru_maxrss: ru_maxrss
    also counts the parent's memory that the child inherited at fork, before exec."""
    out_path = os.path.join(OUT_DIR, f".stdout-{os.getpid()}")
    err_path = os.path.join(OUT_DIR, f".stderr-{os.getpid()}")
    os.makedirs(OUT_DIR, exist_ok=True)
    peak_kb = [0]
    done = threading.Event()

    def watch_memory(pid: int) -> None:
        while not done.is_set():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak_kb[0] = max(peak_kb[0], int(line.split()[1]))
            except (OSError, ValueError):
                pass
            done.wait(0.02)

    with open(out_path, "w+") as out, open(err_path, "w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd or PROJECT_DIR, stdout=out, stderr=err)
        watcher = threading.Thread(target=watch_memory, args=(proc.pid,), daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    os.unlink(out_path)
    os.unlink(err_path)
    return Timed(seconds, proc.returncode, stdout, stderr, usage.ru_utime + usage.ru_stime, peak_kb[0] / 1024)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def warm_page_cache(path: str) -> None:
    """Read the file once so every timed reader starts with it in the page cache (we measure
    CPU cost of the pipelines, not the disk)."""
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def create_postgres(prefix: str) -> tuple[str | None, str]:
    """A new, empty PostgreSQL database named PREFIX_PID_RANDOM: (its URL, "") or (None, why it
    cannot be had, so the caller can skip the PostgreSQL part and say why)."""
    if not port_open("127.0.0.1", PG_PORT):
        return None, f"nothing listening on 127.0.0.1:{PG_PORT}"
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed"
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        return None, f"cannot create a database as postgres: {str(exc).strip()}"
    return f"postgres://postgres@127.0.0.1:{PG_PORT}/{name}", ""


def drop_postgres(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
