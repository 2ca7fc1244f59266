"""Agents for polling tests: misbehaving ones (real HTTP servers on loopback, in threads), and
the project's own agent in processes of its own (RealAgent)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone

from collector.tests.helpers import free_port, manage, popen_manage
from inventory_app import polling
from inventory_app.models import OK, Host


@dataclass
class Answer:
    """What a fake agent sends for one request. `trickle` seconds between pieces of `piece`
    bytes, from the status line on (headers included): an answer that never times out a read
    but never ends either."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    trickle: float = 0.0
    piece: int = 1

    @classmethod
    def json(cls, data, **kwargs) -> Answer:
        return cls(body=json.dumps(data).encode(), **kwargs)


# The token hosts are created with in these tests (and the live agent is configured with).
TOKEN = "poll-token-0123456789abcdef"


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a poller that hung up on a hostile answer is what the tests are about


class FakeAgent:
    """Serves `handler(path)` over real HTTP: an Answer, or (status, body bytes, delay seconds).
    Every requested path is kept in `paths`."""

    def __init__(self, handler):
        outer = self
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn does

            def do_GET(self):
                outer.paths.append(self.path)
                answer = handler(self.path)
                if not isinstance(answer, Answer):
                    status, body, delay = answer
                    answer = Answer(status, body, delay=delay)
                if answer.delay and outer.stop_event.wait(answer.delay):
                    return
                headers = {"Content-Type": "application/json", "Content-Length": str(len(answer.body))}
                headers.update(answer.headers)
                head = f"HTTP/1.1 {answer.status} X\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in headers.items()
                )
                data = head.encode() + b"\r\n" + answer.body
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if not answer.trickle:
                        self.wfile.write(data)
                        return
                    for i in range(0, len(data), answer.piece):
                        if outer.stop_event.wait(answer.trickle):
                            return
                        self.wfile.write(data[i : i + answer.piece])
                        self.wfile.flush()

            def log_message(self, *args):
                pass

        self.stop_event = threading.Event()
        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()


class SlowAgent:
    """An agent whose health check takes `delay` seconds. It counts polls (a health request
    starts one, the day list ends it) and the most that were ever under way at once."""

    HEALTH = json.dumps({"agent_version": "1", "following": True, "sources": []}).encode()

    def __init__(self, testcase, delay: float):
        self.delay = delay
        self.lock = threading.Lock()
        self.polls = self.under_way = self.most_under_way = 0
        self.fake = FakeAgent(self.answer)
        testcase.addCleanup(self.fake.close)
        self.url = self.fake.url

    def answer(self, path: str):
        if path.startswith("/api/v1/health/"):
            with self.lock:
                self.polls += 1
                self.under_way += 1
                self.most_under_way = max(self.most_under_way, self.under_way)
            time.sleep(self.delay)
            return 200, self.HEALTH, 0
        with self.lock:
            self.under_way -= 1
        return 200, b'{"days": []}', 0


class SilentAgent:
    """Accepts connections and never answers (a hung agent)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(100)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self.sock.close()


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


# --- An agent that answers like a real one, unless told otherwise ----------------------------

DAY_PATH = re.compile(r"/api/v1/(?P<what>logins|sources)/(?P<day>\d{4}-\d{2}-\d{2})/")
HEALTH = {"agent_version": "1", "following": True, "sources": []}


def sources_of(day: date, n: int, first: int = 1) -> list[dict]:
    noon = datetime.combine(day, datetime.min.time(), tzinfo=timezone.get_current_timezone()) + timedelta(
        hours=12
    )
    seen = noon.isoformat()
    return [
        {"ip": f"198.18.{i // 250}.{i % 250 + 1}", "sessions": 2, "failed_attempts": 3, "accepted": 0,
         "users": ["root"], "first_seen": seen, "last_seen": seen}
        for i in range(first, first + n)
    ]  # fmt: skip


def day_of(day: date, sources: list[dict]) -> dict:
    """Counts that hold the day's sources, as an agent's would."""
    sessions = sum(s["sessions"] for s in sources)
    return {
        "date": day.isoformat(),
        "sessions": sessions,
        "accepted": sum(s["accepted"] for s in sources),
        "failed_attempts": sum(s["failed_attempts"] for s in sources),
        "failed_sessions": sessions - sum(s["accepted"] for s in sources),
        "invalid_user_sessions": 0,
        "preauth_only": 0,
        "unique_sources": len(sources),
    }


class ScriptedAgent:
    """Serves `days` ({date: [sources]}) as the agent API does, pages of `page_size` rows;
    `hostile(path, answer) -> Answer` may replace any answer. Its day list leaves out days
    without connections, as older agents do; with `every_day` it lists every day asked for,
    zeros included, as the agent API does now."""

    def __init__(self, testcase, days: dict[date, list[dict]] | None = None, hostile=None, page_size=100,
                 every_day: bool = False, host: str | None = None):  # fmt: skip
        today = timezone.localdate()
        self.days = days if days is not None else {today: sources_of(today, 3)}
        self.hostile = hostile or (lambda path, answer: answer)
        self.page_size = page_size
        self.every_day = every_day
        # The host name its health reports (ALPHA_HOST_NAME); None: it says none, as old agents.
        self.host = host
        self.fake = FakeAgent(self.answer)
        testcase.addCleanup(self.fake.close)
        self.url = self.fake.url

    @property
    def paths(self) -> list[str]:
        return self.fake.paths

    def answer(self, path: str) -> Answer:
        return self.hostile(path, self.honest(path))

    def honest(self, path: str) -> Answer:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        if parts.path == "/api/v1/health/":
            return Answer.json(HEALTH if self.host is None else {**HEALTH, "host": self.host})
        if parts.path == "/api/v1/logins/":
            days = dict(self.days)
            if self.every_day:
                since, until = (date.fromisoformat(query[name][0]) for name in ("since", "until"))
                days = {since + timedelta(days=i): days.get(since + timedelta(days=i), [])
                        for i in range((until - since).days + 1)}  # fmt: skip
            return Answer.json({"host": "x", "days": [day_of(d, s) for d, s in sorted(days.items())]})
        found = DAY_PATH.fullmatch(parts.path)
        if found is None:
            return Answer(404, b'{"detail": "Not found."}')
        # Any day: one without connections is zeros and no sources, as the agent answers it.
        day = date.fromisoformat(found["day"])
        sources = self.days.get(day, [])
        if found["what"] == "logins":
            return Answer.json({"host": "x", **day_of(day, sources), "top_sources": [], "top_users": []})
        start = int(query.get("cursor", ["0"])[0])
        end = start + self.page_size
        link = f"{self.url}/api/v1/sources/{day}/?cursor={end}" if end < len(sources) else None
        return Answer.json({"next": link, "previous": None, "results": sources[start:end]})


def days_back(n: int) -> list[date]:
    today = timezone.localdate()
    return [today - timedelta(days=i) for i in range(n)]


def polled_hosts(testcase, fleet: dict[str, dict[date, list[dict]]]) -> dict[str, ScriptedAgent]:
    """A host per name, each polled once from its own agent serving its days over HTTP: what a
    fleet stores, the way polling stores it."""
    agents = {}
    for name, days in fleet.items():
        agents[name] = ScriptedAgent(testcase, days)
        host = Host.objects.create(name=name, url=agents[name].url, token=TOKEN)
        testcase.assertEqual(polling.poll_host(host.pk), OK, Host.objects.get(pk=host.pk).last_error)
    return agents


def address_sources(day: date, ips: list[str]) -> list[dict]:
    """Sources of the day with these addresses (or names), as sources_of() makes them."""
    return [{**row, "ip": ip} for row, ip in zip(sources_of(day, len(ips)), ips, strict=True)]


class RealAgent:
    """The project's own agent as a user runs it, in processes of its own: its own SQLite database
    in a temporary folder, `watch_authlog --once` over the log lines it is given, and
    `serve_agent_api` on a free loopback port. For tests that need several hosts, each with data
    of its own, polled over real HTTP."""

    def __init__(self, name: str, lines: list[str] = ()):
        self.name = name
        self.token = f"token-of-{name}-0123456789abcdef"
        self.folder = tempfile.mkdtemp(prefix=f"alpha-agent-{name}-")
        self.log = os.path.join(self.folder, "auth.log")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "ALPHA_ROLE": "agent",
            "DATABASE_URL": f"sqlite:///{self.folder}/agent.sqlite3",
            "ALPHA_DATA_DIR": self.folder,
            "ALPHA_HOST_NAME": name,
            "ALPHA_AGENT_TOKEN": self.token,
            "ALLOWED_HOSTS": "127.0.0.1",
            # The live log is the one this agent follows: the lines appended later count once.
            "ALPHA_LOG_PATHS": self.log,
        }
        self.server: subprocess.Popen | None = None
        self._run("migrate", "--noinput")
        self.add(list(lines))

    def _run(self, *args: str) -> None:
        done = manage(*args, env_extra=self.env)
        if done.returncode != 0:
            raise AssertionError(f"agent {self.name}: manage.py {args[0]} failed: {done.stderr[-2000:]}")

    def add(self, lines: list[str]) -> None:
        """Append lines to its log and have the agent read them (as a following agent would)."""
        with open(self.log, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        self._run("watch_authlog", "--once", self.log)

    def start(self) -> RealAgent:
        self.server = popen_manage("serve_agent_api", "--bind", f"127.0.0.1:{self.port}", env=self.env)
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", self.port)) != 0:
            if self.server.poll() is not None:
                raise AssertionError(
                    f"agent {self.name}: serve_agent_api exited: {self.server.communicate()[1][-2000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"agent {self.name}: the agent API did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            self.server.communicate(timeout=20)
        shutil.rmtree(self.folder, ignore_errors=True)

    def host(self) -> Host:
        """Its entry in the central inventory (created on first use)."""
        return Host.objects.get_or_create(name=self.name, defaults={"url": self.url, "token": self.token})[0]
