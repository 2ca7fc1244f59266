from __future__ import annotations

import gzip
import os
import shutil
from datetime import datetime, timedelta
from io import StringIO
from unittest import mock

from django.core.management import call_command
from django.test import TestCase
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from collector import tailing
from collector.agent import Agent
from collector.models import LogSource
from collector.recording import ConcurrentWriter, Recorder
from collector.tailing import SourceError

from .helpers import expected_days, stored_counts
from .logs import brute_force, login, sample_log, scanner

START = datetime(2026, 3, 2, 21, 0)


def text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def guessing(start: datetime, first_pid: int, connections: int) -> list[str]:
    """Password guessing from several addresses, a connection every three minutes."""
    lines = []
    for n in range(connections):
        at = start + timedelta(minutes=3 * n)
        lines += brute_force(at, first_pid + n, f"198.51.100.{n + 1}", "admin", attempts=2)
    return lines


class AgentFileTests(TestCase):
    def setUp(self):
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "auth.log")
        self.lines = sample_log(START)

    def write(self, lines: list[str], mode: str = "a", path: str | None = None) -> None:
        with open(path or self.path, mode) as f:
            f.write(text(lines))

    def test_it_counts_a_file_once_even_when_read_twice(self):
        self.write(self.lines)
        Agent().read_file(self.path)
        first = stored_counts()
        Agent().read_file(self.path)
        # Reading the same file again adds nothing.
        self.assertEqual(stored_counts(), first)
        self.assertEqual(first["days"], expected_days(self.lines))

    def test_it_counts_appends_between_reads(self):
        half = len(self.lines) // 2
        self.write(self.lines[:half])
        Agent().read_file(self.path)
        self.write(self.lines[half:])
        Agent().read_file(self.path)
        self.assertEqual(stored_counts()["days"], expected_days(self.lines))

    def test_it_follows_a_rename_rotation(self):
        # A busy minute: connections every few seconds, so the lines syslog still writes to the
        # old file are seconds older than the first lines of the new one, as in real rotations.
        busy = []
        for n in range(30):
            busy += brute_force(
                START + timedelta(seconds=4 * n), 2000 + n, f"198.51.100.{n}", "admin", attempts=2
            )
        self.lines = sorted(busy, key=lambda line: line[:15])
        half = len(self.lines) // 2
        self.write(self.lines[: half - 5])
        agent = Agent()
        (followed,) = agent.start_following([self.path])
        agent.sync(followed)
        # logrotate renames and creates an empty file; syslog writes to the old one until it is
        # told to reopen, also after the agent has seen the new file, then writes to the new one.
        os.rename(self.path, self.path + ".1")
        self.write([], mode="w")
        self.write(self.lines[half - 5 : half - 2], path=self.path + ".1")
        agent.sync(followed)
        self.write(self.lines[half - 2 : half], path=self.path + ".1")
        agent.sync(followed)
        self.write(self.lines[half:])
        agent.sync(followed)
        self.assertEqual(len(followed.retired), 1)
        agent.close(followed)
        self.assertEqual(stored_counts()["days"], expected_days(self.lines))
        # The rotated file is recognised as read: backfilling it adds nothing.
        Agent().read_file(self.path + ".1")
        self.assertEqual(stored_counts()["days"], expected_days(self.lines))

    def test_it_starts_over_after_copytruncate(self):
        half = len(self.lines) // 2
        self.write(self.lines[:half])
        agent = Agent()
        (followed,) = agent.start_following([self.path])
        agent.sync(followed)
        # logrotate's copytruncate: copy, then empty the file in place (same inode).
        shutil.copy(self.path, self.path + ".1")
        with open(self.path, "r+") as f:
            f.truncate(0)
        self.write(self.lines[half:])
        agent.sync(followed)
        agent.close(followed)
        self.assertEqual(stored_counts()["days"], expected_days(self.lines))

    def test_it_finishes_a_file_rotated_while_it_was_stopped(self):
        half = len(self.lines) // 2
        self.write(self.lines[: half - 10])
        Agent().read_file(self.path)
        # While the agent is down: more lines, then rotation and new lines in a new file.
        self.write(self.lines[half - 10 : half])
        os.rename(self.path, self.path + ".1")
        self.write(self.lines[half:], mode="w")
        agent = Agent()
        (followed,) = agent.start_following([self.path])
        agent.sync(followed)
        agent.close(followed)
        self.assertEqual(stored_counts()["days"], expected_days(self.lines))

    def hold_back_a_last_line(self) -> tuple[Agent, object, list[str], list[str]]:
        """The live log ends in a line without its newline (rsyslog was killed halfway through
        writing it): the agent following it holds that line back, as possibly half-written."""
        old = guessing(START, 2000, 10) + scanner(START + timedelta(minutes=31), 2100, "203.0.113.9")
        new = guessing(START + timedelta(hours=1), 3000, 5)
        self.write(old[:-1])
        with open(self.path, "a") as f:
            f.write(old[-1])
        agent = Agent()
        (followed,) = agent.start_following([self.path])
        agent.sync(followed)
        self.assertEqual(stored_counts()["days"], expected_days(old[:-1]))
        return agent, followed, old, new

    def assert_counted_once(self, lines: list[str], rotated: str) -> None:
        self.assertEqual(stored_counts()["days"], expected_days(lines))
        # The rotated file is known as read to its end: backfilling it adds nothing.
        call_command("watch_authlog", rotated, once=True, stderr=StringIO(), stdout=StringIO())
        self.assertEqual(stored_counts()["days"], expected_days(lines))

    def test_it_reads_a_held_back_last_line_once_after_a_rename_rotation(self):
        agent, followed, old, new = self.hold_back_a_last_line()
        os.rename(self.path, self.path + ".1")
        self.write(new, mode="w")
        agent.sync(followed)
        agent.close(followed)
        self.assert_counted_once(old + new, self.path + ".1")

    def test_it_reads_a_held_back_last_line_once_after_copytruncate(self):
        agent, followed, old, new = self.hold_back_a_last_line()
        shutil.copy(self.path, self.path + ".1")
        with open(self.path, "r+") as f:
            f.truncate(0)
        self.write(new)
        agent.sync(followed)
        agent.close(followed)
        # The emptied file no longer holds that line: the copy logrotate made does.
        self.assert_counted_once(old + new, self.path + ".1")

    def test_it_reads_a_held_back_last_line_once_after_a_rotation_and_gzip_while_stopped(self):
        agent, followed, old, new = self.hold_back_a_last_line()
        agent.close(followed)
        # While the agent is stopped, logrotate renames the log and compresses it at once (no
        # delaycompress): the rotated file has a new inode and a new name.
        os.rename(self.path, self.path + ".1")
        with open(self.path + ".1", "rb") as src, gzip.open(self.path + ".1.gz", "wb") as dst:
            dst.write(src.read())
        os.remove(self.path + ".1")
        self.write(new, mode="w")
        agent = Agent()
        (followed,) = agent.start_following([self.path])
        agent.sync(followed)
        agent.close(followed)
        self.assert_counted_once(old + new, self.path + ".1.gz")

    def test_it_recognises_a_compressed_copy_of_a_file_it_read(self):
        lines = self.lines * 3  # over the 1 KB fingerprint
        self.write(lines)
        Agent().read_file(self.path)
        before = stored_counts()
        with open(self.path, "rb") as src, gzip.open(self.path + ".2.gz", "wb") as dst:
            dst.write(src.read())
        Agent().read_file(self.path + ".2.gz")
        self.assertEqual(stored_counts(), before)

    def test_it_keeps_counting_across_midnight_and_reads(self):
        # One connection starting before midnight, its failures after, read in three pieces.
        lines = brute_force(datetime(2026, 3, 2, 23, 59, 59), 4242, "198.51.100.20", "admin", attempts=4)
        for piece in (lines[:1], lines[1:5], lines[5:]):
            self.write(piece)
            Agent().read_file(self.path)
        (day,) = stored_counts()["days"]
        self.assertEqual((day["date"], day["sessions"], day["failed_attempts"]), ("2026-03-02", 1, 4))

    def test_it_counts_malformed_lines_without_stopping(self):
        good = login(START, 10, 11, "192.0.2.1")
        with open(self.path, "wb") as f:
            f.write(text(good[:2]).encode())
            f.write(
                b"Mar  2 21:00:00 web1 sshd[12]: Failed password for \xff\xfe from 192.0.2.2 port 1 ssh2\n"
            )
            f.write(b"\x00\x00garbage sshd\n")
            f.write(text(good[2:]).encode())
        Agent().read_file(self.path)
        source = LogSource.objects.get()
        self.assertEqual(source.malformed_lines, 2)
        self.assertEqual(source.lines_read, 7)
        (day,) = stored_counts()["days"]
        # The undecodable user's failure still counts as a connection.
        self.assertEqual((day["sessions"], day["accepted"], day["failed_attempts"]), (2, 1, 1))

    def test_it_commits_a_backlog_every_few_chunks_and_resumes_exactly_after_a_crash(self):
        # Chunks of 1 KB, a commit every 4 KB and at the end; a crash after the third commit loses
        # only what followed it, read again by the next agent.
        lines = guessing(START, 100, 60)
        self.write(lines)
        size = os.path.getsize(self.path)
        commit = Recorder.commit
        commits = []

        def crashing(recorder, sources):
            if len(commits) == 3:
                raise KeyboardInterrupt
            commits.append(sources[0].offset)
            return commit(recorder, sources)

        with (
            mock.patch("collector.tailing.CHUNK_SIZE", 1024),
            mock.patch("collector.agent.COMMIT_SIZE", 4096),
            mock.patch.object(Recorder, "commit", crashing),
            self.assertRaises(KeyboardInterrupt),
        ):
            Agent().read_file(self.path)
        self.assertEqual(len(commits), 3)
        self.assertTrue(all(4096 <= b - a < 4096 + 1024 for a, b in zip([0, *commits], commits)), commits)
        self.assertEqual(LogSource.objects.get().offset, commits[-1])
        with (
            mock.patch("collector.tailing.CHUNK_SIZE", 1024),
            mock.patch("collector.agent.COMMIT_SIZE", 4096),
        ):
            Agent().read_file(self.path)
        self.assertEqual(LogSource.objects.get().offset, size)
        self.assertEqual(stored_counts()["days"], expected_days(lines))

    def test_it_commits_what_it_read_before_a_read_error_with_that_position(self):
        # A read that fails part-way through a backlog (EIO): the lines before the error are
        # committed with their position, never left to the next commit, another file's, which
        # would store their counts with this file's position behind them (read again: doubled).
        lines, other = guessing(START, 100, 60), guessing(START, 900, 3)
        self.write(lines)
        other_path = os.path.join(self.dir, "other.log")
        self.write(other, path=other_path)
        real = tailing.read_chunks

        def failing(f, offset, *, final=False):
            for n, item in enumerate(real(f, offset, final=final)):
                if n == 2:
                    raise SourceError("auth.log: Input/output error.")
                yield item

        agent = Agent()
        with (
            mock.patch("collector.tailing.CHUNK_SIZE", 1024),
            mock.patch("collector.agent.COMMIT_SIZE", 4096),
        ):
            with mock.patch("collector.agent.read_chunks", failing), self.assertRaises(SourceError):
                agent.read_file(self.path)
            self.assertTrue(1024 < LogSource.objects.get(path=self.path).offset <= 2048)  # two chunks
            agent.read_file(other_path)
            Agent().read_file(self.path)
        self.assertEqual(stored_counts()["days"], expected_days(lines + other))

    def test_it_refuses_a_second_writer(self):
        first, second = Recorder(), Recorder()
        first.commit([])
        with self.assertRaises(ConcurrentWriter):
            second.commit([])


class AgentSplitPropertyTests(HypothesisTestCase):
    @settings(max_examples=15, deadline=None)
    @given(st.lists(st.tuples(st.integers(min_value=1, max_value=5000), st.booleans()), max_size=6))
    def test_it_gives_one_reads_counts_for_any_split_into_appends_and_restarts(self, steps):
        # Appends at arbitrary byte positions (mid-line too), with or without a restart between.
        import tempfile

        data = text(sample_log(START, connections=40)).encode()
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            open(path, "wb").close()
            agent = Agent()
            written = 0
            for size, restart in [*steps, (len(data), False)]:
                piece = data[written : written + size]
                written += len(piece)
                with open(path, "ab") as f:
                    f.write(piece)
                if restart:
                    agent = Agent()
                agent.read_file(path)
        self.assertEqual(stored_counts()["days"], expected_days(data.decode().splitlines()))
