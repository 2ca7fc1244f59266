from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import tempfile
import time
from datetime import datetime, timedelta
from io import StringIO

import requests
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test import TestCase, TransactionTestCase
from django.utils import timezone

from collector.counts import health
from collector.management.commands.watch_authlog import disk_full
from collector.models import DailyCount, LogSource

from .helpers import expected_days, free_port, manage, popen_manage, stored_counts, wait_for_sessions
from .logs import brute_force, sample_log, scanner, syslog

START = datetime(2026, 3, 2, 21, 0)


def write(path: str, lines: list[str], mode: str = "a") -> None:
    with open(path, mode) as f:
        f.write("".join(line + "\n" for line in lines))


class CommandErrorTests(TestCase):
    def test_it_rejects_a_directory_and_a_bad_year(self):
        with self.assertRaisesMessage(CommandError, "is a directory"):
            call_command("watch_authlog", tempfile.gettempdir(), once=True)
        with self.assertRaisesMessage(CommandError, "--year must be a year"):
            call_command("watch_authlog", "/var/log/x", once=True, year=20)

    def test_it_rejects_bad_dates_in_login_counts(self):
        with self.assertRaisesMessage(CommandError, "--since must be a date like"):
            call_command("login_counts", since="yesterday")
        with self.assertRaisesMessage(CommandError, "--since must not be after --until"):
            call_command("login_counts", since="2026-03-05", until="2026-03-01")


class LoginCountsTests(TestCase):
    def test_it_prints_days_in_order_as_json(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            lines = sample_log(START)
            write(path, lines)
            call_command("watch_authlog", path, once=True, stderr=StringIO())
        out = StringIO()
        call_command("login_counts", json=True, stdout=out)
        data = json.loads(out.getvalue())
        self.assertEqual(data["days"], expected_days(lines))
        self.assertEqual([d["date"] for d in data["days"]], sorted(d["date"] for d in data["days"]))
        self.assertTrue(data["host"])
        out = StringIO()
        call_command("login_counts", json=True, since="2026-03-03", until="2026-03-03", stdout=out)
        self.assertEqual([d["date"] for d in json.loads(out.getvalue())["days"]], ["2026-03-03"])


class ParseAuthlogTests(TestCase):
    def test_it_prints_one_json_object_per_event_and_stores_nothing(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            write(
                path, ["Mar  2 21:00:00 web1 CRON[1]: pam_unix(cron:session): session opened for user root"]
            )
            write(path, brute_force(START, 77, "198.51.100.1", "<img src=x onerror=alert(1)>", attempts=1))
            # Stamped with the connection's last line, as syslogd writes it.
            write(path, [syslog(START + timedelta(seconds=3), 77, "last message repeated 3 times")])
            out = StringIO()
            call_command("parse_authlog", path, year=2026, stdout=out)
        events = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual(events[0]["line"], 2)
        self.assertEqual(events[0]["kind"], "invalid_user")
        self.assertEqual(events[0]["user"], "<img src=x onerror=alert(1)>")
        self.assertEqual(events[0]["ts"], "2026-03-02T21:00:00" + events[0]["ts"][19:])
        failed = next(e for e in events if e["kind"] == "failed")
        self.assertEqual(
            (failed["outcome"], failed["method"], failed["source_ip"]),
            ("failure", "password", "198.51.100.1"),
        )
        # "last message repeated" is shown as the event it repeats, with its count.
        self.assertEqual(
            (events[-1]["kind"], events[-1]["count"], events[-1]["line"]), ("disconnected", 3, 7)
        )
        self.assertEqual(
            set(events[0]),
            {
                "line",
                "ts",
                "host",
                "program",
                "pid",
                "kind",
                "outcome",
                "user",
                "source_ip",
                "source_port",
                "method",
                "count",
            },
        )
        self.assertFalse(DailyCount.objects.exists())


class AgentProcessTests(TransactionTestCase):
    """The agent as a user runs it: a separate process against the database."""

    def test_it_names_a_missing_file_in_one_sentence(self):
        result = manage("watch_authlog", "--once", "/nonexistent/auth.log")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip(), "CommandError: /nonexistent/auth.log does not exist.")

    def test_it_neither_loses_nor_doubles_lines_when_killed_mid_read(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            lines = sample_log(START, connections=6000)
            write(path, lines)
            size = os.path.getsize(path)
            for attempt in range(3):
                agent = popen_manage("watch_authlog", "--once", path)
                # Kill it as soon as it has committed part of the file.
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    source = LogSource.objects.first()
                    if (
                        source
                        and source.offset > 0
                        and (source.offset > size * (attempt + 1) / 5 or source.offset == size)
                    ):
                        break
                    time.sleep(0.01)
                agent.send_signal(signal.SIGKILL)
                agent.wait()
            result = manage("watch_authlog", "--once", path)
            self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(LogSource.objects.get().offset, size)
        self.assertEqual(stored_counts()["days"], expected_days(lines))

    def test_it_follows_appends_and_rotation_until_sigterm(self):
        today = timezone.localtime().replace(tzinfo=None, microsecond=0) - timedelta(minutes=5)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            write(path, scanner(today, 100, "198.51.100.1"))
            agent = popen_manage("watch_authlog", path)
            try:
                wait_for_sessions(self, 1)
                write(path, scanner(today, 101, "198.51.100.2"))
                wait_for_sessions(self, 2)
                os.rename(path, path + ".1")
                write(path + ".1", scanner(today, 102, "198.51.100.3"))
                write(path, scanner(today, 103, "198.51.100.4"), mode="w")
                wait_for_sessions(self, 4)
                # The API can tell a following agent from a stopped one.
                self.assertTrue(health()["following"])
            finally:
                agent.send_signal(signal.SIGTERM)
                _, stderr = agent.communicate(timeout=30)
            self.assertEqual(agent.returncode, 0, stderr)

    def test_it_reads_the_last_line_of_finished_files_and_waits_only_for_the_live_one(self):
        def guessing(start: datetime, pid: int, user: str) -> list[str]:
            # Three guessing connections, then a scanner's one line (over 1 KB, as on real hosts).
            lines = []
            for n in range(3):
                lines += brute_force(
                    start + timedelta(minutes=n), pid + n, f"203.0.113.{pid // 100 + n}", user
                )
            return lines + scanner(start + timedelta(minutes=5), pid + 9, f"198.51.100.{pid // 100}")

        archived = guessing(START, 100, "admin")
        rotated = guessing(START + timedelta(hours=1), 200, "oracle")
        live = guessing(START + timedelta(hours=2), 300, "test")
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            # Rotated logs that end without a newline (rsyslog was killed halfway through its
            # last write before the rotation): a compressed one and a plain one (delaycompress).
            with gzip.open(path + ".2.gz", "wt") as f:
                f.write("\n".join(archived))
            with open(path + ".1", "w") as f:
                f.write("\n".join(rotated))
            # The live log, syslog halfway through its last line.
            write(path, live[:-1])
            with open(path, "a") as f:
                f.write(live[-1][:30])
            backfill = ["watch_authlog", "--once", path + ".2.gz", path + ".1", path]
            done = manage(*backfill, env_extra={"ALPHA_LOG_PATHS": path})
            self.assertEqual(done.returncode, 0, done.stderr)
            # The last line of a finished file is a line; only the live log's may be half-written.
            self.assertEqual(stored_counts()["days"], expected_days(archived + rotated + live[:-1]))
            with open(path, "a") as f:
                f.write(live[-1][30:] + "\n")
            done = manage(*backfill, env_extra={"ALPHA_LOG_PATHS": path})
            self.assertEqual(done.returncode, 0, done.stderr)
        # Whole now, the live line counts once; the finished files add nothing when read again.
        self.assertEqual(stored_counts()["days"], expected_days(archived + rotated + live))


class ServeAgentApiTests(TransactionTestCase):
    """The agent API as run-agent.sh and the systemd unit serve it, in the agent role."""

    TOKEN = "serve-token-0123456789abcdef"

    def setUp(self):
        self.port = free_port()
        env = {"ALPHA_ROLE": "agent", "ALPHA_AGENT_TOKEN": self.TOKEN, "ALLOWED_HOSTS": "127.0.0.1"}
        self.server = popen_manage("serve_agent_api", "--bind", f"127.0.0.1:{self.port}", env=env)
        self.addCleanup(self.stop)
        deadline = time.monotonic() + 20
        while socket.socket().connect_ex(("127.0.0.1", self.port)) != 0:
            if self.server.poll() is not None:
                self.fail(f"serve_agent_api exited: {self.server.communicate()[1][-2000:]}")
            self.assertLess(time.monotonic(), deadline, "the agent API did not start")
            time.sleep(0.1)

    def stop(self):
        self.server.send_signal(signal.SIGTERM)
        self.server.communicate(timeout=20)

    def get(self, path: str, token: str | None = None, host: str = "127.0.0.1") -> requests.Response:
        headers = {"Host": host, **({"Authorization": f"Bearer {token}"} if token else {})}
        return requests.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=5)

    def test_it_answers_while_slow_clients_hold_connections(self):
        # Fifty clients sending their headers a byte a second: each holds a connection only.
        slow = []
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.sendall(b"GET /api/v1/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(sock)
        self.addCleanup(lambda: [s.close() for s in slow])
        for _ in range(3):
            time.sleep(0.5)
            for sock in slow:
                sock.sendall(b"a")
            started = time.monotonic()
            response = self.get("/api/v1/health/", self.TOKEN)
            self.assertEqual(response.status_code, 200)
            self.assertLess(time.monotonic() - started, 2)

    def test_it_serves_only_the_agent_api(self):
        self.assertEqual(self.get("/api/v1/health/").status_code, 401)
        # An agent has no users: no admin, no login page, no browsable API.
        for path in ("/admin/", "/admin/login/", "/api-auth/login/", "/accounts/login/", "/"):
            self.assertEqual(self.get(path).status_code, 404, path)
        self.assertEqual(self.get("/api/v1/health/", self.TOKEN).headers["Content-Type"], "application/json")
        # A name the operator did not list in ALLOWED_HOSTS.
        self.assertEqual(self.get("/api/v1/health/", self.TOKEN, host="evil.example").status_code, 400)

    def test_it_reports_the_followed_file_once_after_a_rename_rotation(self):
        today = timezone.localtime().replace(tzinfo=None, microsecond=0) - timedelta(minutes=5)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            write(path, brute_force(today, 100, "198.51.100.1", "admin"), mode="w")
            follower = popen_manage("watch_authlog", path, env={"ALPHA_STAT_INTERVAL": "1"})
            try:
                wait_for_sessions(self, 1)
                # logrotate renames the log and creates a new one, which syslog writes to next.
                os.rename(path, path + ".1")
                write(path, scanner(today, 101, "198.51.100.2"), mode="w")
                wait_for_sessions(self, 2)
                size = os.path.getsize(path)
                health = self.get("/api/v1/health/", self.TOKEN).json()
                metrics = self.get("/metrics", self.TOKEN).text
            finally:
                follower.send_signal(signal.SIGTERM)
                _, stderr = follower.communicate(timeout=30)
            self.assertEqual(follower.returncode, 0, stderr)
        # Caught up: one source at the path, the new file, nothing unread (the central server
        # sums unread_bytes over the sources).
        (source,) = health["sources"]
        self.assertEqual(
            (source["path"], source["offset"], source["file_size"], source["unread_bytes"]),
            (path, size, size, 0),
        )
        # One series per metric and labels: Prometheus rejects a scrape with two alike.
        series = [line.rsplit(" ", 1)[0] for line in metrics.splitlines() if line and line[0] != "#"]
        self.assertEqual(len(series), len(set(series)), metrics)
        self.assertIn(f'alpha_unread_bytes{{source="{path}"}} 0.0', metrics)


class FullDiskTests(TransactionTestCase):
    # Not TestCase: SQLite may roll back the whole transaction on a full disk, the test's own
    # with it, and what is checked is what a real commit leaves behind.
    def test_it_says_the_disk_is_full_and_commits_nothing(self):
        if connection.vendor != "sqlite":
            # The same sentence for PostgreSQL's DiskFull (SQLSTATE 53100), as psycopg raises it.
            import psycopg

            error = OperationalError("could not extend file: No space left on device")
            error.__cause__ = psycopg.errors.DiskFull("could not extend file")
            self.assertTrue(disk_full(error))
            return
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            write(path, sample_log(START, connections=400), mode="w")
            with connection.cursor() as cursor:
                # SQLite answers "database or disk is full" past this many pages: a full disk.
                # Without the free pages earlier tests left, which would take the writes first.
                cursor.execute("VACUUM")
                pages = cursor.execute("PRAGMA page_count").fetchone()[0]
                cursor.execute(f"PRAGMA max_page_count = {pages + 1}")
            try:
                with self.assertRaisesMessage(CommandError, "The disk holding the database is full"):
                    call_command("watch_authlog", path, once=True, stderr=StringIO())
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA max_page_count = 1073741823")
        self.assertFalse(DailyCount.objects.exists())  # nothing half-written
        self.assertFalse(LogSource.objects.filter(offset__gt=0).exists())


class OneWriterTests(TransactionTestCase):
    """A second watch_authlog on a database a running one owns refuses at once, naming it; the
    running one keeps going."""

    def test_a_second_agent_refuses_and_the_first_keeps_counting(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            write(path, scanner(START, 100, "203.0.113.1"), mode="w")
            follower = popen_manage("watch_authlog", path, env={"ALPHA_STAT_INTERVAL": "1"})
            self.addCleanup(lambda: follower.poll() is None and follower.kill())
            wait_for_sessions(self, 1)
            for args in (["watch_authlog", path, "--once"], ["watch_authlog", path]):
                started = time.monotonic()
                second = manage(*args)
                self.assertEqual(second.returncode, 1, args)
                self.assertLess(time.monotonic() - started, 15, args)
                # Its pid (and on PostgreSQL where it connects from).
                self.assertIn(f"Another watch_authlog (pid {follower.pid}", second.stderr)
                self.assertIn("is writing to", second.stderr)
                self.assertEqual(len(second.stderr.strip().splitlines()), 1, second.stderr)
            # The first agent never noticed: it counts what is appended next.
            write(path, scanner(START, 101, "203.0.113.2"))
            wait_for_sessions(self, 2)
            self.assertIsNone(follower.poll())
            follower.send_signal(signal.SIGTERM)
            self.assertEqual(follower.wait(timeout=20), 0)


class SettingErrorTests(TestCase):
    """A bad setting is one line naming the variable and a non-zero exit, in every command."""

    def test_every_command_names_the_bad_variable_in_one_line(self):
        cases = {
            "LOG_LEVEL": ("LOUD", "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not 'LOUD'."),
            "TIME_ZONE": ("Mars/Olympus", "TIME_ZONE 'Mars/Olympus' is not a known time zone."),
            "DATABASE_URL": (
                "sqlite:////nonexistent/dir/x.sqlite3",
                "DATABASE_URL: the folder /nonexistent/dir",
            ),
            "ALPHA_POLL_BUDGET": (
                "400",
                "ALPHA_POLL_BUDGET (400 s) must be at most half of ALPHA_POLL_LEASE",
            ),
            "ALPHA_STAT_INTERVAL": ("soon", "ALPHA_STAT_INTERVAL must be a whole number, not 'soon'."),
        }
        for variable, (value, message) in cases.items():
            for command in (
                ["migrate"],
                ["login_counts"],
                ["watch_authlog", "--once", "/var/log/x"],
                ["poll_hosts", "--once"],
            ):
                with self.subTest(variable=variable, command=command[0]):
                    done = manage(*command, env_extra={variable: value})
                    self.assertEqual(done.returncode, 2, done.stderr)
                    self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
                    self.assertIn(message, done.stderr)
        self.assertFalse(os.path.exists("/nonexistent/dir"))  # a typo makes no folder

    def test_an_unreachable_database_is_one_line_too(self):
        done = manage("migrate", env_extra={"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"})
        self.assertEqual(done.returncode, 1)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertIn("The database failed (", done.stderr)
        self.assertIn("check DATABASE_URL", done.stderr)


class OnceSummaryTests(TransactionTestCase):
    def test_it_ends_with_a_one_line_summary(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            write(
                path,
                brute_force(START, 100, "203.0.113.1", "admin") + scanner(START, 101, "203.0.113.2"),
                mode="w",
            )
            done = manage("watch_authlog", "--once", path)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertRegex(
            done.stdout, r"^Read 10 lines: 2 connections, days touched: 2026-03-02; \d+\.\d s\.\n$"
        )
