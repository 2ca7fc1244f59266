from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tempfile
import time
import tracemalloc
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db.models import F
from django.test import LiveServerTestCase, SimpleTestCase, TestCase, override_settings
from django.utils import timezone

import inventory_app.models as inventory
from collector.models import AcceptedLogin, AgentState, DailyCount, DailySource
from collector.tests.helpers import write_log
from collector.tests.logs import brute_force, scanner, today_lines
from inventory_app import fleet, polling
from inventory_app.models import (
    DOWN,
    NEVER_POLLED,
    NO_SOURCE,
    OK,
    STALE,
    Host,
    HostDay,
    HostLogin,
    HostSource,
)

from .agents import (
    HEALTH,
    TOKEN,
    Answer,
    FakeAgent,
    ScriptedAgent,
    SilentAgent,
    closed_port_url,
    day_of,
    days_back,
    sources_of,
)


class RoundQueueTests(SimpleTestCase):
    def take(self, queue: polling.RoundQueue, polls: contextlib.ExitStack, n: int) -> list[int]:
        """Start n polls (each running until `polls` closes) and return their hosts."""
        return [polls.enter_context(queue.next()) for _ in range(n)]

    def one_by_one(self, queue: polling.RoundQueue, n: int) -> list[int]:
        """The hosts of n polls made one after another."""
        order = []
        for _ in range(n):
            with queue.next() as pk:
                order.append(pk)
        return order

    def test_it_starts_the_hosts_that_failed_first_on_all_but_the_reserved_threads(self):
        # 1,000 hosts polled longest ago first, every tenth silent last time; 64 threads.
        queue = polling.RoundQueue([(pk, pk % 10 == 0) for pk in range(1, 1001)], 64)
        with contextlib.ExitStack() as polls:
            first = self.take(queue, polls, 64)
            # 56 of the failed ones, longest ago first, and 8 threads for the others.
            self.assertEqual(first[:56], list(range(10, 561, 10)))
            self.assertEqual(first[56:], [1, 2, 3, 4, 5, 6, 7, 8])
            # While those 56 wait out their timeouts, the next hosts are answering ones.
            self.assertEqual(self.take(queue, polls, 3), [9, 11, 12])
        # All done: the rest of the failed ones go next, then the rest of the others.
        order = self.one_by_one(queue, 1000 - 67)
        self.assertEqual(order[:44], list(range(570, 1001, 10)))
        self.assertEqual(order[44:], [pk for pk in range(13, 1001) if pk % 10])

    def test_it_gives_a_failed_host_the_thread_a_failed_host_freed(self):
        failed, others = [(pk, True) for pk in (1, 2, 3, 4)], [(pk, False) for pk in (5, 6, 7)]
        queue = polling.RoundQueue(failed + others, 10)
        self.assertEqual(queue.most_failed, 2)
        with contextlib.ExitStack() as polls:
            with queue.next() as pk:
                self.assertEqual(pk, 1)
                self.assertEqual(self.take(queue, polls, 2), [2, 5])  # 2 failed at most
            # 1 is done: its thread goes to the next failed host, then the cap holds again.
            self.assertEqual(self.take(queue, polls, 2), [3, 6])

    def test_it_gives_the_failed_hosts_every_thread_once_no_other_host_is_left(self):
        queue = polling.RoundQueue([(1, True), (2, True), (3, True), (4, False)], 10)
        with contextlib.ExitStack() as polls:
            self.assertEqual(self.take(queue, polls, 4), [1, 2, 4, 3])

    def test_it_lets_one_thread_poll_every_host_in_turn(self):
        queue = polling.RoundQueue([(1, False), (2, True), (3, False)], 1)
        self.assertEqual(self.one_by_one(queue, 3), [2, 1, 3])


@override_settings(
    ALPHA_AGENT_TOKEN=TOKEN,
    ALPHA_POLL_READ_TIMEOUT=1.0,
    ALPHA_POLL_CONNECT_TIMEOUT=1.0,
    ALPHA_POLL_HEALTH_TIMEOUT=1.0,
)
class PollingLiveAgentTests(LiveServerTestCase):
    """The poller against the project's own agent API, served by a live server with real data."""

    def setUp(self):
        yesterday = datetime.combine(timezone.localdate() - timedelta(days=1), datetime.min.time())
        write_log(
            scanner(yesterday + timedelta(hours=3), 50, "203.0.113.9")
            + brute_force(yesterday + timedelta(hours=4), 60, "203.0.113.10", "<script>x</script>")
            + today_lines(70, "198.51.100.5")
        )
        self.host = Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)

    def test_it_stores_every_day_and_source_the_agent_reports(self):
        self.assertEqual(self.host.state, NEVER_POLLED)
        self.assertEqual(polling.poll_host(self.host.pk), OK)
        for agent_day in DailyCount.objects.all():
            stored = HostDay.objects.get(host=self.host, day=agent_day.day)
            self.assertEqual(
                [getattr(stored, f) for f in ("sessions", "accepted", "failed_attempts", "preauth_only")],
                [getattr(agent_day, f) for f in ("sessions", "accepted", "failed_attempts", "preauth_only")],
            )
            self.assertEqual(stored.unique_sources, DailySource.objects.filter(day=agent_day.day).count())
        self.assertEqual(
            sorted(HostSource.objects.values_list("day", "ip", "sessions", "failed_attempts", "accepted")),
            sorted(DailySource.objects.values_list("day", "ip", "sessions", "failed_attempts", "accepted")),
        )
        self.assertEqual(HostSource.objects.get(ip="203.0.113.10").users, ["<script>x</script>"])
        yesterday = HostDay.objects.get(host=self.host, day=timezone.localdate() - timedelta(days=1))
        self.assertEqual(
            yesterday.top_users,
            [{"user": "<script>x</script>", "sessions": 1, "failed_attempts": 3, "accepted": 0}],
        )
        self.host.refresh_from_db()
        self.assertEqual((self.host.last_error, self.host.consecutive_failures), ("", 0))
        self.assertTrue(self.host.agent_version)
        # The agent's health travels along: lines it could not read or did not know.
        self.assertEqual((self.host.malformed_lines, self.host.unknown_last_24h), (0, 0))
        self.assertEqual(self.host.polled_through, timezone.localdate() - timedelta(days=2))

    def test_it_stores_every_login_with_each_changed_day(self):
        polling.poll_host(self.host.pk)
        agent = list(AcceptedLogin.objects.values_list("at", "user", "ip", "port", "method", "ended_at"))
        self.assertTrue(agent)
        self.assertEqual(
            list(
                HostLogin.objects.filter(host=self.host).values_list(
                    "at", "user", "ip", "port", "method", "ended_at"
                )
            ),
            agent,
        )
        # Times of failure and login travel with each source.
        guesser = HostSource.objects.get(ip="203.0.113.10")
        self.assertEqual(guesser.first_failed, DailySource.objects.get(ip="203.0.113.10").first_failed)
        self.assertIsNotNone(HostSource.objects.get(ip="198.51.100.5").first_accepted)
        # A day replaced is replaced with its logins, never doubled.
        HostDay.objects.filter(host=self.host).update(sessions=0)
        polling.poll_host(self.host.pk)
        self.assertEqual(HostLogin.objects.count(), len(agent))

    def test_it_refuses_more_logins_than_the_day_counts(self):
        today = timezone.localdate()
        first = AcceptedLogin.objects.get()
        AcceptedLogin.objects.create(day=today, at=first.at, user="ghost", ip="192.0.2.66", port=1,
                                     method="password", connection="other")  # fmt: skip
        self.assertEqual(polling.poll_host(self.host.pk), DOWN)
        self.host.refresh_from_db()
        self.assertIn(f"more logins for {today} than the 1 its day counts", self.host.last_error)
        self.assertFalse(HostLogin.objects.exists())

    def test_it_marks_a_host_stale_while_its_agent_is_not_following_its_log(self):
        AgentState.objects.update_or_create(pk=1, defaults={"heartbeat_at": timezone.now()})
        self.assertEqual(polling.poll_host(self.host.pk), OK)
        # The watcher stopped: the API still answers, but the counts are getting old.
        AgentState.objects.update(heartbeat_at=timezone.now() - timedelta(minutes=10))
        self.assertEqual(polling.poll_host(self.host.pk), STALE)
        self.host.refresh_from_db()
        self.assertEqual((self.host.last_error, self.host.consecutive_failures), ("", 0))
        self.assertEqual(HostDay.objects.count(), DailyCount.objects.count())  # still stored

    def test_it_shows_a_host_without_a_readable_log_in_a_state_of_its_own(self):
        # watch_authlog found nothing to follow and said why: the host is not an ok host with zeros.
        with (
            tempfile.TemporaryDirectory() as empty,
            override_settings(
                ALPHA_LOG_PATHS=[f"{empty}/auth.log"], ALPHA_JOURNALCTL=f"journalctl --directory={empty}"
            ),
            self.assertRaises(CommandError),
        ):
            call_command("watch_authlog")
        self.assertEqual(polling.poll_host(self.host.pk), NO_SOURCE)
        self.host.refresh_from_db()
        self.assertIn("No sshd log to follow:", self.host.last_error)
        self.assertIn("no journal files were found", self.host.last_error)
        # Given a log, it follows again, and the host is ok again.
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            with open(path, "w") as f:
                f.write("")
            call_command("watch_authlog", path, check=True, stdout=io.StringIO())
        AgentState.objects.update(heartbeat_at=timezone.now())
        self.assertEqual(polling.poll_host(self.host.pk), OK)

    def test_it_stores_nothing_twice_and_replaces_a_revised_day(self):
        polling.poll_host(self.host.pk)
        polling.poll_host(self.host.pk)
        self.assertEqual(HostDay.objects.count(), DailyCount.objects.count())
        self.assertEqual(HostSource.objects.count(), DailySource.objects.count())
        # Today grows on the agent: the stored day is replaced, not added to.
        write_log(today_lines(90, "198.51.100.6"))
        polling.poll_host(self.host.pk)
        today = HostDay.objects.get(host=self.host, day=timezone.localdate())
        self.assertEqual(today.sessions, DailyCount.objects.get(day=timezone.localdate()).sessions)
        self.assertEqual(HostSource.objects.filter(day=timezone.localdate()).count(), 2)

    def test_it_drops_days_the_agent_no_longer_reports(self):
        polling.poll_host(self.host.pk)
        yesterday = timezone.localdate() - timedelta(days=1)
        self.assertTrue(HostSource.objects.filter(day=yesterday).exists())
        # The agent's database was reset and holds only today.
        DailySource.objects.filter(day=yesterday).delete()
        DailyCount.objects.filter(day=yesterday).delete()
        polling.poll_host(self.host.pk)
        self.assertEqual(list(HostDay.objects.values_list("day", flat=True)), [timezone.localdate()])
        self.assertEqual(set(HostSource.objects.values_list("day", flat=True)), {timezone.localdate()})

    def test_it_catches_up_a_host_that_was_away(self):
        self.host.polled_through = timezone.localdate() - timedelta(days=20)
        self.host.save()
        polling.poll_host(self.host.pk)
        self.assertEqual(HostDay.objects.count(), DailyCount.objects.count())

    def test_it_marks_a_host_down_with_a_rejected_token_and_counts_the_failures(self):
        self.host.token = "wrong-token-0123456789"
        self.host.save()
        self.assertEqual(polling.poll_host(self.host.pk), DOWN)
        self.assertEqual(polling.poll_host(self.host.pk), DOWN)
        self.host.refresh_from_db()
        self.assertEqual(
            self.host.last_error, "The agent rejected the token (HTTP 401): check the host's token."
        )
        self.assertEqual(self.host.consecutive_failures, 2)
        self.assertFalse(HostDay.objects.exists())

    def test_it_never_polls_a_host_twice_at_once(self):
        claimed = polling.claim(self.host.pk)
        self.assertIsNotNone(claimed)
        self.assertEqual(polling.poll_host(self.host.pk), "")  # skipped: claimed elsewhere
        self.assertFalse(HostDay.objects.exists())
        polling.release(self.host.pk, claimed)
        self.assertEqual(polling.poll_host(self.host.pk), OK)

    def test_it_releases_only_its_own_claim(self):
        # A poll that outlived its lease: another poll claimed the host since, and keeps it.
        stale = timezone.now() - timedelta(hours=1)
        Host.objects.filter(pk=self.host.pk).update(polling_since=stale)
        newer = polling.claim(self.host.pk)
        self.assertIsNotNone(newer)
        polling.release(self.host.pk, stale)
        self.assertEqual(Host.objects.get(pk=self.host.pk).polling_since, newer)
        self.assertEqual(polling.poll_host(self.host.pk), "")
        polling.release(self.host.pk, newer)
        self.assertIsNone(Host.objects.get(pk=self.host.pk).polling_since)


@override_settings(
    ALPHA_POLL_READ_TIMEOUT=1.0,
    ALPHA_POLL_CONNECT_TIMEOUT=1.0,
    ALPHA_POLL_HEALTH_TIMEOUT=1.0,
    ALPHA_POLL_MAX_BYTES=20_000,
)
class PollingHostileAgentTests(LiveServerTestCase):
    def serve(self, handler) -> str:
        agent = FakeAgent(handler)
        self.addCleanup(agent.close)
        return agent.url

    def poll(self, url: str) -> Host:
        host = Host.objects.create(name=f"h{Host.objects.count()}", url=url, token=TOKEN)
        polling.poll_host(host.pk)
        host.refresh_from_db()
        return host

    def test_it_records_dead_slow_and_lying_agents_with_one_sentence_each(self):
        health = json.dumps({"agent_version": "1", "following": True, "sources": []}).encode()

        def lying(path):
            if path.startswith("/api/v1/health/"):
                return 200, health, 0
            day = timezone.localdate().isoformat()
            row = {"date": day, "sessions": -5, "accepted": 0, "failed_attempts": 0, "failed_sessions": 0,
                   "invalid_user_sessions": 0, "preauth_only": 0, "unique_sources": 0}  # fmt: skip
            return 200, json.dumps({"host": "x", "days": [row]}).encode(), 0

        silent = SilentAgent()
        self.addCleanup(silent.close)
        cases = {
            "dead": (closed_port_url(), "Cannot connect to"),
            "silent": (silent.url, "did not answer in time"),
            "garbage": (self.serve(lambda p: (200, b"<html>no</html>", 0)), "is not JSON"),
            "huge": (self.serve(lambda p: (200, b"[" + b"1," * 50_000 + b"1]", 0)), "exceeded 20,000 bytes"),
            "lying": (self.serve(lying), "invalid day list (days"),
            "broken": (self.serve(lambda p: (500, b"{}", 0)), "answered HTTP 500"),
        }
        for name, (url, expected) in cases.items():
            started = time.monotonic()
            host = self.poll(url)
            self.assertLess(time.monotonic() - started, 5, name)  # at most its timeouts
            self.assertIn(expected, host.last_error, name)
            self.assertEqual(host.state, DOWN, name)
            self.assertNotIn("\n", host.last_error)
        self.assertFalse(HostDay.objects.exists())  # nothing stored from any of them

    @override_settings(ALPHA_POLL_HEALTH_TIMEOUT=0.5, ALPHA_POLL_READ_TIMEOUT=2.0)
    def test_it_gives_up_on_a_hung_agent_after_the_health_timeout_and_on_a_slow_answer_after_the_read_timeout(
        self,
    ):
        silent = SilentAgent()
        self.addCleanup(silent.close)
        started = time.monotonic()
        host = self.poll(silent.url)
        self.assertLess(time.monotonic() - started, 1.5)  # the health timeout, not the read timeout
        self.assertEqual(
            (host.state, host.last_error), (DOWN, f"The agent at {silent.url} did not answer in time.")
        )

        health = json.dumps({"agent_version": "1", "following": True, "sources": []}).encode()
        # Its health is quick, its day list slower than the health timeout but within the read
        # timeout: a slow agent is waited for, up to the read timeout.
        slow = self.serve(lambda path: (200, health, 0) if "health" in path else (200, b'{"days": []}', 1.0))
        self.assertEqual(self.poll(slow).state, OK)

    def test_a_slow_agent_does_not_delay_the_others(self):
        silent = [SilentAgent() for _ in range(4)]
        for agent in silent:
            self.addCleanup(agent.close)
        for i, agent in enumerate(silent):
            Host.objects.create(name=f"silent{i}", url=agent.url, token=TOKEN)
        started = time.monotonic()
        states = polling.poll_round()
        # Concurrent: four 1-second timeouts cost about one second, not four.
        self.assertLess(time.monotonic() - started, 3)
        self.assertEqual(states, {DOWN: 4})

    @override_settings(ALPHA_POLL_CONCURRENCY=10)
    def test_hosts_that_hang_never_take_every_thread(self):
        # 12 hosts that did not answer last time and hang again, 3 that answer, on 10 threads.
        long_ago = timezone.now() - timedelta(hours=1)
        for i in range(12):
            agent = SilentAgent()
            self.addCleanup(agent.close)
            Host.objects.create(
                name=f"silent{i}", url=agent.url, token=TOKEN, consecutive_failures=1, last_poll_at=long_ago
            )
        health = json.dumps({"agent_version": "1", "following": True, "sources": []}).encode()
        for i in range(3):
            url = self.serve(lambda path: (200, health, 0) if "health" in path else (200, b'{"days": []}', 0))
            Host.objects.create(name=f"answers{i}", url=url, token=TOKEN)
        self.assertEqual(polling.poll_round(), {DOWN: 12, OK: 3})
        hosts = Host.objects.order_by("last_poll_at")
        # The three were polled while the first hung hosts still waited out their timeout.
        self.assertEqual(sorted(host.name for host in hosts[:3]), ["answers0", "answers1", "answers2"])


@override_settings(
    ALPHA_AGENT_TOKEN=TOKEN,
    ALPHA_POLL_READ_TIMEOUT=1.0,
    ALPHA_POLL_CONNECT_TIMEOUT=1.0,
    ALPHA_POLL_HEALTH_TIMEOUT=1.0,
)
class RefreshDayTests(LiveServerTestCase):
    def test_it_fetches_one_day_live_from_every_host(self):
        write_log(today_lines(70, "198.51.100.5"))
        live = Host.objects.create(name="live", url=self.live_server_url, token=TOKEN)
        silent = SilentAgent()
        self.addCleanup(silent.close)
        hung = Host.objects.create(name="hung", url=silent.url, token=TOKEN)
        started = time.monotonic()
        errors = polling.refresh_day(timezone.localdate())
        self.assertLess(time.monotonic() - started, 3)
        self.assertEqual(list(errors), [hung.pk])
        day = HostDay.objects.get(host=live)
        self.assertEqual(day.sessions, DailyCount.objects.get(day=timezone.localdate()).sessions)


@override_settings(ALPHA_POLL_READ_TIMEOUT=2.0, ALPHA_POLL_CONNECT_TIMEOUT=2.0, ALPHA_BACKFILL_DAYS=30)
class PollingEmptyDaysTests(TestCase):
    """Agents list the days without connections as zeros (older ones leave them out): a day the
    range says is all zeros is never fetched, and nothing is stored for it."""

    def poll(self, agent: ScriptedAgent) -> Host:
        host = Host.objects.create(name=f"h{Host.objects.count()}", url=agent.url, token=TOKEN)
        self.assertEqual(polling.poll_host(host.pk), OK, Host.objects.get(pk=host.pk).last_error)
        return host

    def test_it_costs_one_request_for_thirty_empty_days(self):
        agent = ScriptedAgent(self, days={}, every_day=True)
        host = self.poll(agent)
        # The health, then the day list (31 days, tomorrow included, all zeros): nothing more.
        listed = [p for p in agent.paths if p.startswith("/api/v1/logins/?")]
        self.assertEqual(len(listed), 1)
        self.assertEqual(len(agent.paths), 2, agent.paths)
        self.assertFalse(HostDay.objects.filter(host=host).exists())

    def test_it_fetches_and_stores_only_the_days_with_connections_from_old_and_new_agents(self):
        today = timezone.localdate()
        days = {
            today: sources_of(today, 3),
            today - timedelta(days=9): sources_of(today - timedelta(days=9), 2),
        }
        for every_day in (False, True):
            with self.subTest(every_day=every_day):
                agent = ScriptedAgent(self, days, every_day=every_day)
                host = self.poll(agent)
                # Health, day list, then each day with connections: its sources and its counts.
                self.assertEqual(len(agent.paths), 2 + 2 * len(days), agent.paths)
                self.assertEqual(
                    sorted(HostDay.objects.filter(host=host).values_list("day", flat=True)), sorted(days)
                )

    def test_it_drops_a_stored_day_the_agent_now_lists_as_zeros(self):
        today = timezone.localdate()
        agent = ScriptedAgent(self, {today: sources_of(today, 3)}, every_day=True)
        host = self.poll(agent)
        self.assertTrue(HostSource.objects.filter(host=host, day=today).exists())
        # The agent's database was reset: today is zeros now, and is not fetched again.
        agent.days = {}
        agent.paths.clear()
        polling.poll_host(host.pk)
        self.assertEqual(len(agent.paths), 2, agent.paths)
        self.assertFalse(HostDay.objects.filter(host=host).exists())
        self.assertFalse(HostSource.objects.filter(host=host).exists())


@override_settings(ALPHA_AGENT_TOKEN=TOKEN, ALPHA_POLL_READ_TIMEOUT=2.0, ALPHA_POLL_CONNECT_TIMEOUT=2.0)
class DuplicateAgentTests(LiveServerTestCase):
    """One agent behind two inventory entries (another name, the same URL or the same reported
    host name) is polled and counted once: the first entry counts it, the other gets an error
    and stays out of every total."""

    def setUp(self):
        write_log(today_lines(70, "198.51.100.5"))  # the live agent's log

    def fleet_sessions(self) -> int:
        return fleet.day_totals(timezone.localdate())["sessions"]

    def assert_counted_once(self, first: Host, again: Host, *words: str):
        first.refresh_from_db()
        again.refresh_from_db()
        self.assertEqual((first.state, first.last_error), (OK, ""))
        self.assertEqual(again.state, inventory.DUPLICATE)
        for word in (first.name, *words):
            self.assertIn(word, again.last_error)
        self.assertEqual(again.duplicate_of, first)
        self.assertTrue(HostDay.objects.filter(host=first).exists())
        self.assertFalse(HostDay.objects.filter(host=again).exists())
        self.assertFalse(HostSource.objects.filter(host=again).exists())

    def test_it_counts_an_agent_once_when_two_entries_share_its_url(self):
        first = Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)
        # The same URL spelled another way: scheme and host in capitals, a trailing slash.
        again = Host.objects.create(name="web1-again", url=self.live_server_url.upper() + "/", token=TOKEN)
        self.assertEqual(polling.poll_round(), {OK: 1, inventory.DUPLICATE: 1})
        self.assert_counted_once(first, again, "URL")
        today = DailyCount.objects.get(day=timezone.localdate())
        self.assertEqual(self.fleet_sessions(), today.sessions)
        # A live refresh does not count it twice either; nor does the next round.
        errors = polling.refresh_day(timezone.localdate())
        self.assertIn("web1", errors[again.pk])
        self.assertEqual(polling.poll_round(), {OK: 1, inventory.DUPLICATE: 1})
        self.assertEqual(self.fleet_sessions(), today.sessions)

    @override_settings(ALPHA_HOST_NAME="web1")
    def test_it_counts_an_agent_once_when_two_entries_reach_it_by_different_names(self):
        first = Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)
        url = self.live_server_url.replace("localhost", "127.0.0.1")
        self.assertNotEqual(url, self.live_server_url)
        again = Host.objects.create(name="web1-by-address", url=url, token=TOKEN)
        self.assertEqual(polling.poll_round(), {OK: 1, inventory.DUPLICATE: 1})
        self.assert_counted_once(first, again, "'web1'")
        self.assertEqual(self.fleet_sessions(), DailyCount.objects.get(day=timezone.localdate()).sessions)
        # The first entry disabled, the other one counts the agent (and catches up its days).
        Host.objects.filter(pk=first.pk).update(enabled=False)
        HostDay.objects.filter(host=first).delete()
        self.assertEqual(polling.poll_round(), {OK: 1})
        again.refresh_from_db()
        self.assertEqual((again.state, again.duplicate_of), (OK, None))
        self.assertEqual(self.fleet_sessions(), DailyCount.objects.get(day=timezone.localdate()).sessions)

    def test_the_older_entry_counts_the_agent_whichever_poll_gets_there_first(self):
        # Two URLs of one agent (same name, same token), polled in one concurrent round; the
        # slow one's health comes after the other's whole poll.
        def slow(path, answer):
            return replace(answer, delay=0.5) if path.startswith("/api/v1/health/") else answer

        for slower in ("older", "younger"):
            with self.subTest(slower=slower):
                Host.objects.all().delete()
                urls = [ScriptedAgent(self, host="web1", hostile=slow if slower == which else None).url
                        for which in ("older", "younger")]  # fmt: skip
                older, younger = (Host.objects.create(name=name, url=url, token=TOKEN)
                                  for name, url in zip(("web1", "web1-again"), urls))  # fmt: skip
                # (The round's summary is what each poll ended with: when the younger entry's
                # poll ends first, it is taken over after it.)
                polling.poll_round()
                self.assert_counted_once(older, younger, "'web1'")
                self.assertEqual(polling.poll_round(), {OK: 1, inventory.DUPLICATE: 1})
                self.assert_counted_once(older, younger, "'web1'")

    def test_it_shows_the_name_an_agent_reports_as_text(self):
        hostile = "<img src=x onerror=alert(1)>"
        urls = [ScriptedAgent(self, host=hostile).url for _ in range(2)]
        first, again = (
            Host.objects.create(name=f"web{i}", url=url, token=TOKEN) for i, url in enumerate(urls)
        )
        polling.poll_round()
        self.assert_counted_once(first, again, hostile)
        self.client.force_login(User.objects.create_superuser("admin", password="pw"))
        # The pages escape it (the API returns it as a JSON string, as every agent text).
        for url in (
            f"/hosts/{again.name}/",
            f"/admin/inventory_app/host/{again.pk}/change/",
            "/admin/inventory_app/host/",
        ):
            with self.subTest(url):
                response = self.client.get(url)
                self.assertEqual(response.status_code, 200)
                self.assertNotIn(hostile, response.content.decode())
                self.assertIn("&lt;img src=x onerror=alert(1)&gt;", response.content.decode())

    def test_an_agent_claiming_another_hosts_name_cannot_knock_it_out(self):
        today = timezone.localdate()
        honest = ScriptedAgent(self, {today: sources_of(today, 3)}, host="web7")
        liar = ScriptedAgent(self, {today: sources_of(today, 5, first=50)}, host="evil")
        # The liar's entry is the older one, and the fleet shares one token.
        evil = Host.objects.create(name="evil", url=liar.url, token=TOKEN)
        web7 = Host.objects.create(name="web7", url=honest.url, token=TOKEN)
        self.assertEqual(polling.poll_round(), {OK: 2})
        # Now it claims web7's name: the name's first holder keeps it, the newer claim loses.
        liar.host = "web7"
        self.assertEqual(polling.poll_round(), {OK: 1, inventory.DUPLICATE: 1})
        self.assert_counted_once(web7, evil, "'web7'")
        self.assertEqual(self.fleet_sessions(), day_of(today, sources_of(today, 3))["sessions"])
        # With a token of its own it is another agent, whatever name it says: both count.
        Host.objects.filter(pk=evil.pk).update(token="another-token-0123456789")
        self.assertEqual(polling.poll_round(), {OK: 2})
        web7.refresh_from_db()
        self.assertEqual((web7.state, web7.duplicate_of), (OK, None))


@override_settings(ALPHA_POLL_READ_TIMEOUT=2.0, ALPHA_POLL_CONNECT_TIMEOUT=2.0)
class PollingBehindAProxyTests(LiveServerTestCase):
    def test_it_follows_source_pages_under_the_hosts_path_prefix(self):
        # An agent behind a reverse proxy at /agents/web1: its next links keep the prefix.
        day = timezone.localdate().isoformat()
        seen = timezone.now().isoformat()
        counts = {"sessions": 2, "accepted": 0, "failed_attempts": 0, "failed_sessions": 0,
                  "invalid_user_sessions": 0, "preauth_only": 2, "unique_sources": 2}  # fmt: skip

        def source(ip):
            return {"ip": ip, "sessions": 1, "failed_attempts": 0, "accepted": 0, "users": [],
                    "first_seen": seen, "last_seen": seen}  # fmt: skip

        def answer(path):
            prefix = "/agents/web1"
            if not path.startswith(prefix):
                return 404, b"{}", 0
            path = path[len(prefix) :]
            if path.startswith("/api/v1/health/"):
                body = {"agent_version": "1", "following": True, "sources": []}
            elif path.startswith("/api/v1/logins/?"):
                body = {"host": "web1", "days": [{"date": day, **counts}]}
            elif path.startswith(f"/api/v1/logins/{day}/"):
                body = {"host": "web1", "date": day, **counts, "top_sources": [], "top_users": []}
            elif "cursor=2" in path:
                body = {"next": None, "previous": None, "results": [source("192.0.2.2")]}
            else:
                nxt = f"{agent.url}{prefix}/api/v1/sources/{day}/?cursor=2"
                body = {"next": nxt, "previous": None, "results": [source("192.0.2.1")]}
            return 200, json.dumps(body).encode(), 0

        agent = FakeAgent(answer)
        self.addCleanup(agent.close)
        host = Host.objects.create(name="web1", url=f"{agent.url}/agents/web1", token=TOKEN)
        self.assertEqual(polling.poll_host(host.pk), OK, Host.objects.get(pk=host.pk).last_error)
        self.assertEqual(sorted(HostSource.objects.values_list("ip", flat=True)), ["192.0.2.1", "192.0.2.2"])


HOSTILE_SETTINGS = {
    "ALPHA_AGENT_TOKEN": TOKEN,
    "ALPHA_POLL_CONNECT_TIMEOUT": 1.0,
    "ALPHA_POLL_READ_TIMEOUT": 1.0,
    "ALPHA_POLL_HEALTH_TIMEOUT": 1.0,
    "ALPHA_POLL_REQUEST_TIMEOUT": 1.5,
    "ALPHA_POLL_BUDGET": 3.0,
    "ALPHA_POLL_ROUND_TIMEOUT": 8.0,
    "ALPHA_POLL_MAX_BYTES": 200_000,
    "ALPHA_POLL_MAX_SOURCES": 300,
}


@override_settings(**HOSTILE_SETTINGS)
class HostileAgentTests(LiveServerTestCase):
    """A round over an honest host (the project's own agent, live, with real data) and a host
    whose agent is the attacker's: the attack costs its bounds and an error on its own host, and
    the honest host is stored exactly all the same."""

    def setUp(self):
        yesterday = datetime.combine(timezone.localdate() - timedelta(days=1), datetime.min.time())
        write_log(
            brute_force(yesterday + timedelta(hours=4), 60, "203.0.113.10", "admin")
            + today_lines(70, "198.51.100.5")
        )
        self.good = Host.objects.create(name="good", url=self.live_server_url, token=TOKEN)

    def poll_round_with(self, *agents) -> tuple[list[Host], float]:
        hosts = [Host.objects.create(name=f"evil{i}", url=a.url, token=TOKEN) for i, a in enumerate(agents)]
        started = time.monotonic()
        self.states = polling.poll_round()
        seconds = time.monotonic() - started
        for host in hosts:
            host.refresh_from_db()
        return hosts, seconds

    def memory_of_polling(self, host: Host) -> int:
        """Peak bytes allocated while polling `host` again, alone (the round's one-time costs,
        such as the honest host's first requests, are behind us)."""
        tracemalloc.start()
        try:
            polling.poll_host(host.pk)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def assert_good_host_polled_exactly(self):
        self.good.refresh_from_db()
        self.assertEqual((self.good.state, self.good.last_error), (OK, ""))
        fields = (
            "day",
            "sessions",
            "accepted",
            "failed_attempts",
            "failed_sessions",
            "invalid_user_sessions",
            "preauth_only",
        )
        self.assertEqual(
            sorted(HostDay.objects.filter(host=self.good).values_list(*fields)),
            sorted(DailyCount.objects.values_list(*fields)),
        )
        source_fields = (
            "day",
            "ip",
            "sessions",
            "failed_attempts",
            "accepted",
            "users",
            "first_seen",
            "last_seen",
        )
        self.assertEqual(
            sorted(HostSource.objects.filter(host=self.good).values_list(*source_fields)),
            sorted(DailySource.objects.values_list(*source_fields)),
        )

    def assert_down_with(self, host: Host, error: str, stored: bool = False):
        self.assertEqual(host.state, DOWN)
        self.assertIn(error, host.last_error)
        self.assertNotIn("\n", host.last_error)
        self.assertIsNone(host.polling_since)  # released
        if not stored:
            self.assertFalse(HostDay.objects.filter(host=host).exists())
            self.assertFalse(HostSource.objects.filter(host=host).exists())

    def test_it_cuts_an_answer_trickled_a_byte_at_a_time(self):
        # Every read gets a byte within the read timeout, status line and headers included:
        # only the request's total deadline ends it.
        trickle = ScriptedAgent(self, hostile=lambda path, answer: replace(answer, trickle=0.1))
        (evil,), seconds = self.poll_round_with(trickle)
        self.assertLess(seconds, 1.5 + 1.0)
        self.assert_down_with(evil, "did not finish an answer within 1.5 s (ALPHA_POLL_REQUEST_TIMEOUT)")
        self.assert_good_host_polled_exactly()

    def test_it_ends_a_slow_but_valid_poll_at_its_budget(self):
        # Each answer is valid and in time (0.4 s), but a poll of ten changed days takes 22 of them.
        days = {day: sources_of(day, 3) for day in days_back(10)}
        slow = ScriptedAgent(self, days, hostile=lambda path, answer: replace(answer, delay=0.4))
        (evil,), seconds = self.poll_round_with(slow)
        self.assertLess(seconds, 3.0 + 1.0)
        self.assert_down_with(evil, "took longer than its 3 s budget (ALPHA_POLL_BUDGET)", stored=True)
        # What was fetched in time is stored; polled_through waits for a complete poll.
        self.assertLess(HostDay.objects.filter(host=evil).count(), 10)
        self.assertIsNone(evil.polled_through)
        self.assert_good_host_polled_exactly()

    @override_settings(ALPHA_POLL_CONCURRENCY=2, ALPHA_POLL_ROUND_TIMEOUT=2.5)
    def test_it_ends_a_round_on_time_whatever_its_hosts_do(self):
        days = {day: sources_of(day, 3) for day in days_back(10)}
        slow = [
            ScriptedAgent(self, days, hostile=lambda path, answer: replace(answer, delay=0.9))
            for _ in range(6)
        ]
        evil, seconds = self.poll_round_with(*slow)
        self.assertLess(seconds, 2.5 + 1.0)
        # Two polled at a time: the honest host (polled longest ago, first), then two slow ones
        # cut by the round's end; the round never reached the rest, which go first next time.
        self.assertEqual(self.states, {OK: 1, DOWN: 2, polling.NOT_REACHED: 4})
        cut = [h for h in evil if h.state == DOWN]
        for host in cut:
            self.assert_down_with(
                host, "The polling round ended (2.5 s) before this host's poll finished.", stored=True
            )
        self.assertEqual(Host.objects.filter(polling_since__isnull=False).count(), 0)
        self.assert_good_host_polled_exactly()
        first_next_round = list(
            Host.objects.order_by(F("last_poll_at").asc(nulls_first=True), "pk").values_list(
                "state", flat=True
            )
        )[:4]
        self.assertEqual(first_next_round, [NEVER_POLLED] * 4)

    def test_it_refuses_a_compressed_answer_it_did_not_ask_for(self):
        # 50 kB that would decompress to 50 MB (a 2 MB one would be 2 GB).
        bomb = gzip.compress(b" " * 50_000_000, compresslevel=9)
        headers = {"Content-Encoding": "gzip"}

        def hostile(path, answer):
            return (
                replace(answer, body=bomb, headers=headers) if path.startswith("/api/v1/logins/?") else answer
            )

        (evil,), _ = self.poll_round_with(ScriptedAgent(self, hostile=hostile))
        self.assert_down_with(evil, "is compressed (gzip), which was not asked for")
        self.assertLess(self.memory_of_polling(evil), 1_000_000)  # never decompressed
        self.assert_good_host_polled_exactly()

    def test_it_stops_at_a_next_link_that_loops(self):
        today = timezone.localdate()

        def hostile(path, answer):
            if path.startswith(f"/api/v1/sources/{today}/"):
                link = f"{agent.url}/api/v1/sources/{today}/?cursor=0"
                return Answer.json({"next": link, "previous": None, "results": sources_of(today, 1)})
            return answer

        agent = ScriptedAgent(self, hostile=hostile)
        (evil,), seconds = self.poll_round_with(agent)
        self.assert_down_with(evil, f"The agent's next link for {today} loops back to a page already read.")
        self.assertLessEqual(sum("/sources/" in p for p in agent.paths), 3)
        self.assert_good_host_polled_exactly()

    def test_it_refuses_a_next_link_that_climbs_out_with_encoded_dots(self):
        today = timezone.localdate()

        def hostile(path, answer):
            if path.startswith(f"/api/v1/sources/{today}/"):
                link = f"{agent.url}/api/v1/sources/{today}/%2e%2e/%2e%2e/%2e%2e/admin/?cursor=1"
                return Answer.json({"next": link, "previous": None, "results": sources_of(today, 1)})
            return answer

        agent = ScriptedAgent(self, hostile=hostile)
        (evil,), _ = self.poll_round_with(agent)
        self.assert_down_with(evil, "The agent's next link leaves its source list.")
        self.assertFalse([p for p in agent.paths if "admin" in p or "%2e" in p.lower()])
        self.assert_good_host_polled_exactly()

    def test_it_caps_a_flood_of_pages(self):
        today = timezone.localdate()

        def hostile(path, answer):
            # Endless pages of new addresses, each a valid page.
            if path.startswith(f"/api/v1/sources/{today}/"):
                cursor = int(parse_qs(urlsplit(path).query).get("cursor", ["0"])[0])
                link = f"{agent.url}/api/v1/sources/{today}/?cursor={cursor + 100}"
                return Answer.json(
                    {"next": link, "previous": None, "results": sources_of(today, 100, cursor)}
                )
            return answer

        agent = ScriptedAgent(self, hostile=hostile)
        (evil,), _ = self.poll_round_with(agent)
        self.assert_down_with(
            evil, f"The agent's source list for {today} has more than 300 addresses (ALPHA_POLL_MAX_SOURCES)."
        )
        self.assertLessEqual(sum("/sources/" in p for p in agent.paths), 4)
        self.assertLess(self.memory_of_polling(evil), 1_000_000)  # 5 x ALPHA_POLL_MAX_BYTES
        self.assert_good_host_polled_exactly()

    def test_it_refuses_times_out_of_range_and_every_page_still_answers(self):
        today = timezone.localdate()

        def late_source(path, answer):
            if path.startswith(f"/api/v1/sources/{today}/"):
                rows = [{**sources_of(today, 1)[0], "first_seen": "9999-12-31T23:59:59-14:00"}]
                return Answer.json({"next": None, "previous": None, "results": rows})
            return answer

        def early_event(path, answer):
            if path.startswith("/api/v1/health/"):
                return Answer.json({**HEALTH, "sources": [{"last_event_at": "0001-01-01T00:00:00+14:00"}]})
            return answer

        (late, early), _ = self.poll_round_with(
            ScriptedAgent(self, hostile=late_source), ScriptedAgent(self, hostile=early_event)
        )
        self.assert_down_with(late, "results[0].first_seen: must be between")
        self.assert_down_with(early, "sources[0].last_event_at: must be between")
        self.assert_good_host_polled_exactly()
        # Nothing unreadable was stored: every page that lists hosts still answers.
        user = User.objects.create_superuser("admin", password="pw")
        self.client.force_login(user)
        for url in ("/admin/inventory_app/host/", f"/admin/inventory_app/host/{late.pk}/change/",
                    f"/admin/inventory_app/host/{early.pk}/delete/", "/api/v1/hosts/", "/", "/attackers/",
                    f"/hosts/{late.name}/", f"/hosts/{early.name}/"):  # fmt: skip
            with self.subTest(url):
                self.assertEqual(self.client.get(url).status_code, 200)

    def test_it_refuses_counts_that_contradict_each_other(self):
        today = timezone.localdate()

        def more_logins_than_connections(path, answer):
            if path.startswith("/api/v1/logins/?"):
                return Answer.json(
                    {"host": "x", "days": [{**day_of(today, sources_of(today, 3)), "accepted": 10**9}]}
                )
            return answer

        def sources_beyond_the_day(path, answer):
            if path.startswith(f"/api/v1/logins/{today}/"):
                return Answer.json(
                    {"host": "x", **day_of(today, sources_of(today, 2)), "top_sources": [], "top_users": []}
                )
            return answer

        (absurd, beyond), _ = self.poll_round_with(
            ScriptedAgent(self, hostile=more_logins_than_connections),
            ScriptedAgent(self, hostile=sources_beyond_the_day),
        )
        self.assert_down_with(absurd, "days[0].accepted: must not be more than the day's sessions (6)")
        self.assert_down_with(beyond, "unique_sources: is 2 but the source list has 3 addresses")
        self.assert_good_host_polled_exactly()

    def test_it_refuses_an_address_that_is_markup(self):
        today = timezone.localdate()

        def hostile(path, answer):
            if path.startswith(f"/api/v1/sources/{today}/"):
                rows = [{**sources_of(today, 1)[0], "ip": "<script>alert(1)</script>"}]
                return Answer.json({"next": None, "previous": None, "results": rows})
            return answer

        (evil,), _ = self.poll_round_with(ScriptedAgent(self, hostile=hostile))
        self.assert_down_with(evil, "results[0].ip: must be an IP address or a host name")
        self.assert_good_host_polled_exactly()

    def test_it_refuses_deeply_nested_json(self):
        deep = ScriptedAgent(self, hostile=lambda path, answer: Answer(body=b"[" * 100_000 + b"]" * 100_000))
        (evil,), seconds = self.poll_round_with(deep)
        self.assert_down_with(evil, "The agent's answer to /api/v1/health/ is nested too deeply.")
        self.assert_good_host_polled_exactly()
