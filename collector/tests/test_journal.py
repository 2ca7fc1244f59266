"""Reading the journal through the real journalctl, from journal files built for the test."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import TestCase, TransactionTestCase, override_settings

from collector.counts import health
from collector.journal import JournalReader
from collector.models import JOURNAL, AgentState, DailyCount, LogSource

from .helpers import popen_manage, wait_for_sessions

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT_A = "0123456789abcdef0123456789abcdef"
BOOT_B = "fedcba9876543210fedcba9876543210"

if not (os.path.exists(JOURNAL_REMOTE) and shutil.which("journalctl")):
    if os.environ.get("CI") == "true":
        raise RuntimeError(
            "CI needs journalctl and systemd-journal-remote (apt-get install systemd-journal-remote)."
        )
    pytest.skip("journalctl or systemd-journal-remote is not installed", allow_module_level=True)


def export_entry(
    ts_us: int, pid: int, message: str | bytes, ident: str = "sshd", boot: str = BOOT_A
) -> bytes:
    """One entry in the journal export format (binary-safe MESSAGE when given bytes)."""
    fields = [
        f"__REALTIME_TIMESTAMP={ts_us}", f"__MONOTONIC_TIMESTAMP={ts_us}", f"_BOOT_ID={boot}",
        "_HOSTNAME=web1", f"SYSLOG_IDENTIFIER={ident}", f"_PID={pid}", f"_COMM={ident}", "PRIORITY=6",
    ]  # fmt: skip
    data = "".join(f + "\n" for f in fields).encode()
    if isinstance(message, bytes):
        data += b"MESSAGE\n" + struct.pack("<Q", len(message)) + message + b"\n"
    else:
        data += f"MESSAGE={message}\n".encode()
    return data + b"\n"


def append_journal(path: str, entries: list[bytes]) -> None:
    with tempfile.NamedTemporaryFile(suffix=".export") as export:
        export.write(b"".join(entries))
        export.flush()
        subprocess.run([JOURNAL_REMOTE, "-o", path, export.name], check=True, capture_output=True)


class JournalTests(TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "sshd.journal")
        self.now = int(time.time() * 1e6) - 3_600_000_000

    def read(self) -> None:
        with override_settings(ALPHA_JOURNALCTL=f"journalctl --file={self.path}"):
            call_command("watch_authlog", journal=True, once=True)

    def test_it_counts_sshd_entries_and_resumes_from_its_cursor(self):
        t = self.now
        append_journal(self.path, [
            export_entry(t, 100, "Invalid user admin from 198.51.100.1 port 4444"),
            export_entry(t + 1, 100, "Failed password for invalid user admin from 198.51.100.1 port 4444 ssh2"),
            export_entry(t + 2, 100, "Connection closed by invalid user admin 198.51.100.1 port 4444 [preauth]"),
            export_entry(t + 3, 200, "Accepted publickey for bob from 192.0.2.7 port 5555 ssh2: ED25519 SHA256:x", "sshd-session"),
            export_entry(t + 4, 300, "pam_unix(cron:session): session opened for user root", "cron"),
        ])  # fmt: skip
        self.read()
        self.assertEqual(sum(DailyCount.objects.values_list("sessions", flat=True)), 2)
        self.assertEqual(sum(DailyCount.objects.values_list("failed_attempts", flat=True)), 1)
        source = LogSource.objects.get(kind=JOURNAL)
        self.assertEqual(source.lines_read, 4)  # the cron entry is not sshd's: not even read
        self.assertTrue(source.cursor)

        # Read again: nothing new. Append: only the new entry is read.
        self.read()
        append_journal(
            self.path,
            [export_entry(t + 5, 400, "Did not receive identification string from 203.0.113.5 port 1")],
        )
        self.read()
        source.refresh_from_db()
        self.assertEqual(source.lines_read, 5)
        self.assertEqual(sum(DailyCount.objects.values_list("sessions", flat=True)), 3)
        self.assertEqual(sum(DailyCount.objects.values_list("preauth_only", flat=True)), 1)

    def test_it_tells_connections_of_different_boots_apart(self):
        t = self.now
        append_journal(self.path, [
            export_entry(t, 100, "Connection closed by 198.51.100.2 port 1 [preauth]", boot=BOOT_A),
            export_entry(t + 10, 100, "Did not receive identification string from 198.51.100.2 port 2", boot=BOOT_B),
        ])  # fmt: skip
        self.read()
        self.assertEqual(sum(DailyCount.objects.values_list("sessions", flat=True)), 2)

    def test_it_counts_a_binary_message_as_malformed_without_stopping(self):
        append_journal(self.path, [
            export_entry(self.now, 100, b"Failed password for \xff\xfe from 198.51.100.3 port 7 ssh2"),
            export_entry(self.now + 1, 101, "Connection closed by 198.51.100.4 port 8 [preauth]"),
        ])  # fmt: skip
        self.read()
        source = LogSource.objects.get(kind=JOURNAL)
        self.assertEqual(source.malformed_lines, 1)
        self.assertEqual(sum(DailyCount.objects.values_list("sessions", flat=True)), 2)

    def test_it_lists_in_health_only_the_source_it_reads_now(self):
        append_journal(self.path, [
            export_entry(self.now, 100, "Connection closed by 198.51.100.1 port 4444 [preauth]"),
        ])  # fmt: skip
        self.read()
        # Later the host gets rsyslog, and the agent reads auth.log instead of the journal.
        log = os.path.join(self.dir, "auth.log")
        with open(log, "w") as f:
            f.write("Mar  2 21:00:00 web1 sshd[200]: Connection closed by 198.51.100.2 port 5555 [preauth]\n")
        with override_settings(ALPHA_LOG_PATHS=[log]):
            call_command("watch_authlog", once=True, stdout=StringIO(), stderr=StringIO())
        # The journal of the earlier run is no source any more: not listed, not summed centrally.
        self.assertEqual([(s["kind"], s["path"]) for s in health()["sources"]], [("file", log)])
        self.read()
        self.assertEqual([s["kind"] for s in health()["sources"]], ["journal"])

    def test_it_says_what_is_missing_when_journalctl_is_not_there(self):
        with (
            override_settings(ALPHA_JOURNALCTL="/nonexistent/journalctl"),
            self.assertRaisesMessage(CommandError, "/nonexistent/journalctl was not found"),
        ):
            call_command("watch_authlog", journal=True, once=True)

    def test_it_reports_a_journalctl_failure_in_one_sentence(self):
        with (
            override_settings(
                ALPHA_JOURNALCTL=f"journalctl --file={self.dir}/missing.journal --since=garbage"
            ),
            self.assertRaisesMessage(CommandError, "journalctl failed"),
        ):
            call_command("watch_authlog", journal=True, once=True)


class JournalReaderTests(TestCase):
    def test_it_hands_out_an_empty_batch_for_each_quiet_interval_while_following(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "quiet.journal")
        append_journal(path, [export_entry(int(time.time() * 1e6), 100, "session opened", ident="cron")])
        reader = JournalReader(f"journalctl --file={path}", None, follow=True)
        self.addCleanup(reader.close)
        deadline = time.monotonic() + 5
        batches = reader.batches(lambda: time.monotonic() > deadline, idle_timeout=0.2)
        quiet = list(itertools.islice(batches, 3))
        self.assertEqual([(b.entries, b.unreadable, b.cursor) for b in quiet], [([], 0, None)] * 3)


class JournalFollowTests(TransactionTestCase):
    def test_it_follows_new_entries_until_sigterm(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "sshd.journal")
        t = int(time.time() * 1e6)
        append_journal(path, [export_entry(t, 100, "Connection closed by 198.51.100.2 port 1 [preauth]")])
        agent = popen_manage(
            "watch_authlog", "--journal", env={"ALPHA_JOURNALCTL": f"journalctl --file={path}"}
        )
        try:
            wait_for_sessions(self, 1)
            append_journal(
                path, [export_entry(t + 5, 101, "Connection closed by 198.51.100.3 port 2 [preauth]")]
            )
            wait_for_sessions(self, 2)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, stderr = agent.communicate(timeout=30)
        self.assertEqual(agent.returncode, 0, stderr)

    def test_ctrl_c_stops_it_quietly(self):
        # Ctrl-C reaches the whole process group, journalctl included: no "journalctl failed".
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "quiet.journal")
        append_journal(path, [export_entry(int(time.time() * 1e6), 100, "session opened", ident="cron")])
        agent = popen_manage(
            "watch_authlog", "--journal", session=True,
            env={"ALPHA_JOURNALCTL": f"journalctl --file={path}", "ALPHA_STAT_INTERVAL": "1"},
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not AgentState.objects.filter(heartbeat_at__isnull=False).exists():
            self.assertLess(time.monotonic(), deadline, "the agent did not start following")
            time.sleep(0.2)
        os.killpg(agent.pid, signal.SIGINT)
        _, stderr = agent.communicate(timeout=30)
        self.assertEqual(agent.returncode, 0, stderr)
        self.assertEqual(
            stderr.strip().splitlines(), [f"Following the systemd journal (journalctl --file={path})."]
        )

    def test_it_says_it_is_following_while_the_journal_stays_quiet(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "quiet.journal")
        append_journal(path, [export_entry(int(time.time() * 1e6), 100, "session opened", ident="cron")])
        agent = popen_manage(
            "watch_authlog",
            "--journal",
            env={"ALPHA_JOURNALCTL": f"journalctl --file={path}", "ALPHA_STAT_INTERVAL": "1"},
        )
        try:
            deadline = time.monotonic() + 20
            while not AgentState.objects.filter(heartbeat_at__isnull=False).exists():
                self.assertLess(time.monotonic(), deadline, "no heartbeat from a journal-following agent")
                time.sleep(0.2)
            self.assertIsNone(agent.poll())
        finally:
            agent.send_signal(signal.SIGTERM)
            _, stderr = agent.communicate(timeout=30)
        self.assertEqual(agent.returncode, 0, stderr)
        self.assertFalse(DailyCount.objects.exists())
