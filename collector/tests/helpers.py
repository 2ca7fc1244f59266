"""Shared helpers for tests that read real files into the real database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection

from collector.contract import TALLIED, is_address
from collector.counts import day_rows
from collector.models import DailySource, DailyUser
from collector.parsing import MALFORMED, Parser
from collector.sessions import Tracker

ROOT = Path(__file__).resolve().parents[2]


def write_log(lines: list[str]) -> None:
    """Write `lines` as an auth.log and have the agent read it into the test database."""
    from collector.agent import Agent

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "auth.log")
        with open(path, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        Agent().read_file(path)


def stored_counts() -> dict:
    """Everything the agent stored, in a form easy to compare."""
    return {
        "days": day_rows(),
        "sources": sorted(
            DailySource.objects.values_list("day", "ip", "sessions", "failed_attempts", "accepted")
        ),
        "users": sorted(
            DailyUser.objects.values_list("day", "user", "sessions", "failed_attempts", "accepted")
        ),
    }


def expected_days(lines: list[str], now: datetime | None = None) -> list[dict]:
    """Per-day counts of reading `lines` in one pass, computed without the database."""
    zone = ZoneInfo(settings.TIME_ZONE)
    parser = Parser(zone, now=now or datetime.now(zone))
    tracker = Tracker()
    for line in lines:
        event = parser.parse_line(line)
        if event is not None and event is not MALFORMED:
            tracker.feed(event)
    tally = tracker.take_tally()
    ips: dict[str, set] = {}
    for (day, ip), counts in tally.sources.items():
        if is_address(ip) and counts.sessions > 0:  # as CountsQuerySet.addresses() counts them
            ips.setdefault(day, set()).add(ip)
    rows = []
    for day in sorted(tally.days):
        counts = dict(zip(TALLIED, tally.days[day]))
        if not any(counts.values()):
            continue
        rows.append({"date": day, **counts, "unique_sources": len(ips.get(day, ()))})
    return rows


# Ports free_port() handed out in this process: a server binds its port only later, and the
# kernel may offer a port again once the probing socket is closed (two agents of one test were
# given the same port, and so the same URL).
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before by this process."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def database_url() -> str:
    """The URL of the test database, for agent subprocesses."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def manage(
    *args: str, check: bool = False, env_extra: dict | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run manage.py in a subprocess against the test database (`env_extra` on top)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": "test",
        "TIME_ZONE": settings.TIME_ZONE,
        **(env_extra or {}),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env, cwd=ROOT, capture_output=True, text=True, check=check, timeout=300, **kwargs,
    )  # fmt: skip


def popen_manage(*args: str, env: dict | None = None, session: bool = False) -> subprocess.Popen:
    """manage.py in a subprocess against the test database; `session`: in a process group of
    its own, so that a signal to the group is what Ctrl-C in a terminal sends."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": "test",
        "TIME_ZONE": settings.TIME_ZONE,
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=session,
    )  # fmt: skip


def wait_for_sessions(test, n: int, seconds: float = 20) -> None:
    """Wait until the stored sessions add up to n (an agent subprocess is writing them)."""
    import time

    from collector.models import DailyCount

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sum(DailyCount.objects.values_list("sessions", flat=True)) == n:
            return
        time.sleep(0.02)
    test.fail(f"the agent did not reach {n} sessions: {stored_counts()['days']}")
