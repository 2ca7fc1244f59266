from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock, skipUnless

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TestCase, TransactionTestCase
from django.test.utils import CaptureQueriesContext

from collector import models
from collector.models import AgentState, DailyCount, DailySource, DailyUser, LogSource, OpenConnection
from collector.parsing import Parser
from collector.recording import LostCommits, Recorder

from .logs import syslog

START = datetime(2026, 3, 2, 21, 0)


def feed(recorder: Recorder, lines: list[str]) -> None:
    parser = Parser(UTC, now=datetime(2026, 6, 30, tzinfo=UTC))
    for line in lines:
        recorder.tracker.feed(parser.parse_line(line))


def guesses(connections: int, at: datetime = START, first_pid: int = 5000) -> list[str]:
    """Connections opened in one second, still open."""
    return [
        syslog(at, first_pid + n, f"Invalid user admin from 192.0.2.{n % 250} port {n}")
        for n in range(connections)
    ]


def failure(pid: int, at: datetime = START) -> str:
    return syslog(
        at, pid, f"Failed password for invalid user admin from 192.0.2.{(pid - 5000) % 250} port 1 ssh2"
    )


class RecorderTests(TestCase):
    def setUp(self):
        self.source = LogSource.objects.create(path="auth.log", fingerprint="")

    def test_it_keeps_open_connections_across_a_restart(self):
        first = Recorder()
        feed(first, guesses(3))
        first.commit([self.source])
        self.assertEqual(OpenConnection.objects.count(), 3)
        # Only the tracker-wide state is left in the blob.
        self.assertNotIn("conns", AgentState.objects.get().tracker)

        # A restarted agent knows the three: their next lines are no new connections.
        second = Recorder()
        self.assertEqual(set(second.tracker.conns), set(first.tracker.conns))
        feed(second, [failure(5000, START + timedelta(seconds=2))])
        second.commit([self.source])
        day = DailyCount.objects.get()
        self.assertEqual((day.sessions, day.failed_attempts, day.failed_sessions), (3, 1, 1))
        self.assertEqual(OpenConnection.objects.get(key="|web1|5000").state[4], 1)  # Conn.failed

    def test_it_stores_attacker_text_exactly_and_adds_to_stored_rows(self):
        # User names and host names are attacker text; the rows travel as parameters (one JSON
        # text on PostgreSQL), never as SQL. Written twice: the second commit adds to the rows.
        users = ["o'brien", 'x"); DROP TABLE collector_dailyuser; --', "back\\slash", "{]}\u00e9\u2603",
                 "r\u00f6\u00f6t \U0001f600", "a\tb"]  # fmt: skip
        lines = [syslog(START, 6000 + n, f"Failed password for {user} from 198.51.100.7 port {n} ssh2")
                 for n, user in enumerate(users)]  # fmt: skip
        recorder = Recorder()
        feed(recorder, lines)
        recorder.commit([self.source])
        feed(recorder, [syslog(START + timedelta(seconds=30), 6000 + n, line.split(": ", 1)[1])
                        for n, line in enumerate(lines)])  # fmt: skip
        recorder.commit([self.source])
        stored = dict(DailyUser.objects.values_list("user", "failed_attempts"))
        self.assertEqual(stored, dict.fromkeys(users, 2))
        source = DailySource.objects.get()
        self.assertEqual((source.ip, source.sessions, source.failed_attempts), ("198.51.100.7", 6, 12))
        self.assertEqual(sorted(source.users), sorted(users))
        first = START.replace(tzinfo=UTC)
        self.assertEqual((source.first_seen, source.last_seen), (first, first + timedelta(seconds=30)))
        self.assertEqual(OpenConnection.objects.count(), 6)
        self.assertEqual(OpenConnection.objects.get(key="|web1|6001").state[3], [users[1]])

    def test_it_deletes_the_rows_of_connections_it_forgot(self):
        recorder = Recorder()
        end = START + timedelta(seconds=1)
        feed(
            recorder,
            [
                *guesses(2),
                syslog(end, 5000, "Connection closed by invalid user admin 192.0.2.0 port 0 [preauth]"),
            ],
        )
        recorder.commit([self.source])
        # An ended connection is kept a while (copies syslog delivers again are not new ones).
        self.assertEqual(OpenConnection.objects.count(), 2)

        # Idle past IDLE_SECONDS, both are forgotten when a later line comes.
        feed(recorder, guesses(1, START + timedelta(minutes=11), first_pid=7000))
        recorder.commit([self.source])
        self.assertEqual(list(OpenConnection.objects.values_list("key", flat=True)), ["|web1|7000"])
        self.assertEqual(set(Recorder().tracker.conns), {"|web1|7000"})

    def test_it_writes_only_the_changed_connections(self):
        def one_change(open_connections: int) -> tuple[list[str], list[str]]:
            OpenConnection.objects.all().delete()
            recorder = Recorder()
            feed(recorder, guesses(open_connections))
            recorder.commit([self.source])
            feed(recorder, [failure(5001)])
            # The rows go as parameters, not in the SQL: the keys are read off the upsert.
            with (
                CaptureQueriesContext(connection) as queries,
                mock.patch.object(models, "upsert", wraps=models.upsert) as upsert,
            ):
                recorder.commit([self.source])
            keys = [
                row[0]
                for call in upsert.call_args_list
                if call.args[0] is OpenConnection
                for row in call.args[3]
            ]
            return [q["sql"] for q in queries.captured_queries], keys

        (few, _), (many, keys) = one_change(40), one_change(2000)
        # As many queries with 2,000 open as with 40, and one connection written.
        self.assertEqual(len(few), len(many))
        self.assertEqual(len([sql for sql in many if "collector_openconnection" in sql]), 1)
        self.assertEqual(keys, ["|web1|5001"])
        self.assertEqual(OpenConnection.objects.get(key="|web1|5001").state[4], 1)  # its failure, saved


class LostCommitTests(TestCase):
    def test_it_stops_when_the_database_lost_its_latest_commits_and_a_new_agent_reads_on(self):
        # A PostgreSQL crash can lose the last batches (they do not wait for the flush): the
        # database is then an earlier commit of this agent's, and its tracker must not write.
        source = LogSource.objects.create(path="auth.log", fingerprint="")
        recorder = Recorder()
        feed(recorder, guesses(2))
        recorder.commit([source])
        kept = AgentState.objects.get().generation
        feed(recorder, [failure(5000, START + timedelta(seconds=1))])
        recorder.commit([source])
        AgentState.objects.update(generation=kept)  # as if the second commit were lost
        feed(recorder, [failure(5001, START + timedelta(seconds=2))])
        with self.assertRaisesRegex(LostCommits, "no longer holds this agent's latest commits"):
            recorder.commit([source])
        self.assertEqual(DailyCount.objects.get().failed_attempts, 1)  # nothing of the refused batch
        Recorder().commit([source])  # a new agent writes on from what the database holds


@skipUnless(connection.vendor == "postgresql", "a PostgreSQL setting")
class DurabilityTests(TransactionTestCase):
    def test_it_commits_a_batch_without_waiting_for_the_flush_and_leaves_the_session_as_it_was(self):
        # A batch lost in a crash is read again (its read position is in the same transaction),
        # so it need not wait for the disk; other transactions of the connection still do.
        source = LogSource.objects.create(path="auth.log", fingerprint="")
        recorder = Recorder()
        feed(recorder, guesses(3))
        with CaptureQueriesContext(connection) as queries:
            recorder.commit([source])
        self.assertTrue(any(q["sql"] == "SET LOCAL synchronous_commit = off" for q in queries))
        self.assertEqual(DailyCount.objects.get().sessions, 3)
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            self.assertEqual(cursor.fetchone()[0], "on")


class MigrationTests(TransactionTestCase):
    before = [("collector", "0005_accepted_logins")]
    after = [("collector", "0006_open_connections")]

    def tearDown(self):
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("collector"))

    def migrate(self, target):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(target)
        return executor.loader.project_state(target).apps

    def test_it_moves_the_open_connections_out_of_the_blob_and_back(self):
        apps = self.migrate(self.before)
        conn = [
            "2026-03-02",
            1772485200.0,
            "192.0.2.1",
            ["admin"],
            1,
            False,
            True,
            False,
            "conn",
            None,
            None,
            None,
        ]
        old = [
            "2026-03-02",
            1772485201.0,
            None,
            [],
            0,
            False,
            False,
            True,
            "post",
            None,
        ]  # ten fields, ended True
        blob = {"conns": {"|web1|5000": conn, "|web1|5001": old}, "newest": 1772485201.0,
                "next_evict": 1772485800.0, "last_host": "web1"}  # fmt: skip
        apps.get_model("collector", "AgentState").objects.create(pk=1, tracker=blob)

        self.migrate(self.after)
        # Each connection is a row, as saved; the rest of the blob stays.
        self.assertEqual(OpenConnection.objects.as_tracker_state(), blob["conns"])
        self.assertEqual(AgentState.objects.get().tracker, {k: v for k, v in blob.items() if k != "conns"})
        # The agent starts from the rows as it would have from the blob.
        tracker = Recorder().tracker
        self.assertEqual(tracker.conns["|web1|5000"].to_list(), conn)
        self.assertEqual(tracker.conns["|web1|5001"].ended, 1772485201.0)
        self.assertEqual(tracker.last_host, "web1")

        # Migrating back rebuilds the blob.
        apps = self.migrate(self.before)
        self.assertEqual(apps.get_model("collector", "AgentState").objects.get().tracker, blob)
