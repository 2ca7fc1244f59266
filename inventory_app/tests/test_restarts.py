"""The central server's processes outlive a restart of their PostgreSQL or their Redis.

Each test starts the server it restarts (servers.py: a cluster in a temporary folder, a
redis-server on a free port), never the machine's own. Under CI=true a missing binary fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests
from django.conf import settings
from django.test import SimpleTestCase, TransactionTestCase, override_settings
from django_celery_beat.models import IntervalSchedule

from collector.tests.helpers import ROOT, database_url, free_port
from inventory_app.models import OK, Host
from inventory_app.schedule import ensure_poll_schedule

from .agents import SlowAgent
from .servers import TempPostgres, TempRedis, Unavailable, wait_for_port

TOKEN = "restart-token-0123456789"
SHORT = {
    "ALPHA_POLL_CONNECT_TIMEOUT": "1",
    "ALPHA_POLL_READ_TIMEOUT": "3",
    "ALPHA_POLL_HEALTH_TIMEOUT": "3",
}


def unavailable(testcase, exc: Exception) -> None:
    if os.environ.get("CI") == "true":
        testcase.fail(f"{exc}; CI needs it for the restart tests.")
    testcase.skipTest(f"{exc} (CI would fail).")


class Processes:
    """Subprocesses of manage.py, gunicorn or celery, with their output in files."""

    def __init__(self, testcase, env: dict):
        self.env = {**os.environ, **env}
        self.folder = Path(tempfile.mkdtemp(prefix="alpha-restart-"))
        self.running: dict[str, subprocess.Popen] = {}
        testcase.addCleanup(self.stop_all)

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def start(self, name: str, *command: str) -> subprocess.Popen:
        with open(self.folder / f"{name}.out", "w") as out, open(self.folder / f"{name}.err", "w") as err:
            process = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=out, stderr=err)
        self.running[name] = process
        return process

    def output(self, name: str) -> str:
        return (self.folder / f"{name}.err").read_text() + (self.folder / f"{name}.out").read_text()

    def stop(self, name: str, seconds: float = 30) -> int:
        process = self.running[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{name} did not stop within {seconds:.0f} s of SIGTERM") from None

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def wait_until(testcase, condition, what: str, seconds: float, processes: Processes | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if processes:
            for name, process in processes.running.items():
                if process.poll() is not None:
                    testcase.fail(
                        f"{name} exited ({process.returncode}) waiting for {what}:\n{processes.output(name)[-3000:]}"
                    )
        time.sleep(0.2)
    output = (
        "".join(f"\n--- {name}:\n{processes.output(name)[-1500:]}" for name in processes.running)
        if processes
        else ""
    )
    testcase.fail(f"no {what} within {seconds:.0f} s{output}")


class PostgresRestartTests(SimpleTestCase):
    """poll_hosts and gunicorn against a PostgreSQL server that is stopped and started again."""

    def setUp(self):
        try:
            self.pg = TempPostgres()
        except (Unavailable, subprocess.CalledProcessError, KeyError) as exc:
            unavailable(self, exc)
        self.addCleanup(self.pg.close)
        self.pg.create_database()
        self.processes = Processes(
            self,
            {"DATABASE_URL": self.pg.url, "SECRET_KEY": "test", "ALPHA_ROLE": "central",
             "TIME_ZONE": settings.TIME_ZONE, **SHORT},
        )  # fmt: skip
        self.processes.run("migrate", "--verbosity", "0")
        token_file = self.processes.folder / "token"
        token_file.write_text(TOKEN)
        # Its health check takes a while, so that the database can be stopped with a poll in flight.
        self.agent = SlowAgent(self, delay=1.5)
        self.processes.run("add_host", "web1", self.agent.url, "--token-file", str(token_file))
        self.processes.env["DJANGO_SUPERUSER_PASSWORD"] = "restart-password-1"
        self.processes.run("createsuperuser", "--noinput", "--username", "admin", "--email", "a@localhost")
        self.api_token = self.processes.run("drf_create_token", "admin").split()[2]

    def last_poll(self) -> datetime | None:
        try:
            with psycopg.connect(host="127.0.0.1", port=self.pg.port, user="postgres", dbname="alpha") as db:
                return db.execute("SELECT last_poll_at FROM inventory_app_host").fetchone()[0]
        except psycopg.OperationalError:
            return None

    def get_hosts(self, port: int) -> list[int]:
        headers = {"Authorization": f"Token {self.api_token}"}
        return [requests.get(f"http://127.0.0.1:{port}/api/v1/hosts/", headers=headers, timeout=10).status_code
                for _ in range(6)]  # fmt: skip

    def test_poll_hosts_and_gunicorn_carry_on_after_a_database_restart(self):
        port = free_port()
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.processes.start(
            "gunicorn", gunicorn, "alphaproject.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"
        )
        poller = self.processes.start(
            "poller", sys.executable, str(ROOT / "manage.py"), "poll_hosts", "--interval", "1"
        )
        wait_for_port(port)
        wait_until(self, self.last_poll, "first poll", 30, self.processes)
        self.assertEqual(self.get_hosts(port), [200] * 6)  # both workers hold a connection now

        # Stopped with a poll in flight: the host is claimed (polling_since) and its poll cannot
        # write its result or release the claim. Left claimed, the host would go unpolled for
        # ALPHA_POLL_LEASE (10 minutes) after the database came back.
        wait_until(self, lambda: self.agent.under_way > 0, "a poll in flight", 30, self.processes)
        self.pg.stop()
        time.sleep(3)  # the poll in flight fails, then rounds fail meanwhile
        self.pg.start()
        restarted = datetime.now(UTC)

        # The poller waited, logged, and polled again; the web server's kept connections are
        # replaced instead of answering 500.
        wait_until(
            self,
            lambda: (self.last_poll() or restarted) > restarted,
            "poll after the restart",
            30,
            self.processes,
        )
        self.assertEqual(self.get_hosts(port), [200] * 6)
        self.assertIsNone(poller.poll())
        self.assertEqual(self.processes.stop("poller", seconds=10), 0)
        log = self.processes.output("poller")
        self.assertIn("Polling round skipped, the database failed:", log)
        self.assertNotIn("Traceback", log)
        # One line per failed round, not a traceback of dozens.
        failures = [line for line in log.splitlines() if line.startswith("Polling round skipped")]
        self.assertTrue(all(len(line) < 300 for line in failures))
        self.assertEqual(self.processes.stop("gunicorn"), 0)


@override_settings(ALPHA_AGENT_TOKEN=TOKEN)
class RedisRestartTests(TransactionTestCase):
    """A Celery worker and beat against a Redis that is killed (`kill -9`) with a poll in flight
    and started again: both carry on, and the host goes on being polled."""

    def setUp(self):
        try:
            self.redis = TempRedis()
        except Unavailable as exc:
            unavailable(self, exc)
        self.addCleanup(self.redis.close)
        self.processes = Processes(
            self,
            {"DATABASE_URL": database_url(), "SECRET_KEY": "test", "ALPHA_ROLE": "central",
             "TIME_ZONE": settings.TIME_ZONE, "CELERY_BROKER_URL": self.redis.url, **SHORT},
        )  # fmt: skip

    def test_a_worker_and_beat_carry_on_after_redis_is_killed_with_a_poll_in_flight(self):
        agent = SlowAgent(self, delay=1.5)
        host = Host.objects.create(name="web1", url=agent.url, token=TOKEN)
        task, _ = ensure_poll_schedule()
        task.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
        task.save()
        celery = str(Path(sys.executable).with_name("celery"))
        self.processes.start(
            "worker", celery, "-A", "alphaproject", "worker", "--pool", "threads", "--concurrency", "4",
            "-l", "info", "-n", f"alpha-restart-{os.getpid()}@%h", "--without-mingle", "--without-gossip",
        )  # fmt: skip
        self.processes.start(
            "beat", celery, "-A", "alphaproject", "beat", "-l", "info",
            "-s", str(self.processes.folder / "schedule"), "--pidfile", str(self.processes.folder / "beat.pid"),
        )  # fmt: skip

        def polled() -> bool:
            host.refresh_from_db()
            return host.state == OK

        wait_until(self, polled, "first poll", 60, self.processes)
        wait_until(self, lambda: agent.under_way > 0, "a poll in flight", 20, self.processes)
        self.redis.kill()
        time.sleep(3)
        self.redis.start()
        restarted = datetime.now(UTC)

        def polled_again() -> bool:
            host.refresh_from_db()
            return host.state == OK and host.last_poll_at > restarted

        wait_until(self, polled_again, "poll after the restart", 60, self.processes)
        log = self.processes.output("worker")
        self.assertNotIn("Unrecoverable error", log)
        self.assertEqual((self.processes.stop("worker"), self.processes.stop("beat")), (0, 0))
        host.refresh_from_db()
        self.assertIsNone(host.polling_since)
