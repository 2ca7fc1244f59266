"""The checks on what agents answer: plain values out, one named problem for anything else."""

from __future__ import annotations

import json
import unittest
from datetime import UTC, date, datetime, timedelta, timezone

from inventory_app import answers

SEEN = "2026-03-02T12:00:00Z"
DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 3, 9, tzinfo=UTC)


def source(**changes) -> dict:
    row = {"ip": "203.0.113.9", "sessions": 3, "failed_attempts": 7, "accepted": 0,
           "users": ["root", "<img src=x onerror=alert(1)>"], "first_seen": SEEN,
           "last_seen": "2026-03-02T13:00:00+01:00"}  # fmt: skip
    row.update(changes)
    return row


def counts(**changes) -> dict:
    row = {"date": "2026-03-02", "sessions": 5, "accepted": 1, "failed_attempts": 9, "failed_sessions": 3,
           "invalid_user_sessions": 2, "preauth_only": 1, "unique_sources": 4}  # fmt: skip
    row.update(changes)
    return row


class SourcePageTests(unittest.TestCase):
    def problem(self, page) -> str:
        # Through JSON, as the poller receives it.
        with self.assertRaises(answers.InvalidAnswer) as caught:
            answers.source_page(json.loads(json.dumps(page)), DAY, NOW)
        return str(caught.exception)

    def test_it_turns_a_page_into_plain_values(self):
        rows, next_url = answers.source_page(
            {"next": "https://web1:8001/api/v1/sources/2026-03-02/?cursor=abc", "results": [source()]},
            DAY,
            NOW,
        )
        self.assertEqual(next_url, "https://web1:8001/api/v1/sources/2026-03-02/?cursor=abc")
        self.assertEqual(
            rows,
            [
                {
                    "ip": "203.0.113.9",
                    "is_address": True,
                    "sessions": 3,
                    "failed_attempts": 7,
                    "accepted": 0,
                    "users": ["root", "<img src=x onerror=alert(1)>"],  # data, kept as sent
                    "first_seen": datetime(2026, 3, 2, 12, tzinfo=UTC),
                    "last_seen": datetime(2026, 3, 2, 13, tzinfo=timezone(timedelta(hours=1))),
                    # An agent before 1.5 sends no failure and login times.
                    "first_failed": None,
                    "last_failed": None,
                    "first_accepted": None,
                }
            ],
        )
        self.assertEqual(answers.source_page({"next": None, "results": []}, DAY, NOW), ([], None))

    def test_it_checks_when_a_source_failed_and_logged_in(self):
        # Each between the source's first and last sighting (12:00 and 12:30 here).
        times = {"first_failed": "2026-03-02T12:10:00Z", "last_failed": "2026-03-02T12:20:00Z",
                 "first_accepted": "2026-03-02T12:21:00Z", "last_seen": "2026-03-02T12:30:00Z"}  # fmt: skip
        rows, _ = answers.source_page({"next": None, "results": [source(**times)]}, DAY, NOW)
        self.assertEqual(rows[0]["first_accepted"], datetime(2026, 3, 2, 12, 21, tzinfo=UTC))
        cases = {
            "results[0].first_failed: must be between": {**times, "first_failed": "2026-03-01T00:00:00Z"},
            "results[0].last_failed: must be given with first_failed": {**times, "first_failed": None},
            "results[0].last_failed: must be given with first_failed, and not": {
                **times, "first_failed": "2026-03-02T12:30:00Z", "last_failed": "2026-03-02T12:25:00Z"},
        }  # fmt: skip
        for expected, fields in cases.items():
            with self.subTest(expected):
                self.assertTrue(
                    self.problem({"next": None, "results": [source(**fields)]}).startswith(expected)
                )

    def test_it_names_the_field_and_the_problem(self):
        cases = {
            "results[0].sessions: must be a whole number from 0 to 10^12": source(sessions=-1),
            "results[0].failed_attempts: must be a whole number from 0 to 10^12": source(
                failed_attempts=10**12 + 1
            ),
            "results[0].accepted: must be a whole number from 0 to 10^12": source(accepted=True),
            "results[0].sessions: must be a whole number from 0 to 10^12 ": source(sessions="3"),
            "results[0].ip: must be a string": source(ip=None),
            "results[0].ip: must not be blank": source(ip="  "),
            "results[0].ip: must be at most 255 characters": source(ip="1" * 256),
            "results[0].ip: must not contain NUL characters": source(ip="203.0.113.9\x00"),
            "results[0].users[1]: must be valid Unicode": source(users=["root", "\ud800"]),
            "results[0].users: must have at most 20 items": source(users=["u"] * 21),
            "results[0].users[0]: must be at most 128 characters": source(users=["u" * 129]),
            "results[0].first_seen: must include a UTC offset": source(first_seen="2026-03-02T12:00:00"),
            "results[0].last_seen: must be an ISO 8601 date and time": source(last_seen="yesterday"),
            "results[0].last_seen: must be an ISO 8601 date and time ": source(last_seen=1700000000),
            "results[0]: must be an object": ["203.0.113.9"],
            # Markup is not an address, nor a name sshd could have written.
            "results[0].ip: must be an IP address or a host name": source(ip="<script>alert(1)</script>"),
            "results[0].ip: must be an IP address or a host name ": source(ip="203.0.113.9 port 22"),
            "results[0].accepted: must not be more than the day's sessions (3)": source(accepted=4),
            # Times PostgreSQL would store but not read back, or that no log of that day holds.
            "results[0].first_seen: must be between 2026-03-01 00:00 and 2026-03-04 00:00 UTC": source(
                first_seen="9999-12-31T23:59:59-14:00"
            ),
            "results[0].first_seen: must be between 2026-03-01 00:00 and 2026-03-04 00:00 UTC ": source(
                first_seen="0001-01-01T00:00:00+14:00"
            ),
            "results[0].first_seen: must be between 2026-03-01 00:00 and 2026-03-04 00:00 UTC  ": source(
                first_seen="2026-02-27T12:00:00Z"
            ),
            "results[0].last_seen: must be between 2026-03-02 12:00 and 2026-03-04 09:00 UTC": source(
                last_seen="2026-03-02T11:59:00Z"
            ),
            "results[0].last_seen: must be between 2026-03-02 12:00 and 2026-03-04 09:00 UTC ": source(
                last_seen="9999-12-31T23:59:59-14:00"
            ),
        }
        for expected, row in cases.items():
            with self.subTest(expected):
                self.assertEqual(self.problem({"next": None, "results": [row]}), expected.strip())
        self.assertEqual(
            self.problem({"next": None, "results": [source()] * 1001}),
            "results: must have at most 1000 items",
        )
        self.assertEqual(
            self.problem({"next": "file:///etc/passwd", "results": []}),
            "next: must be an http(s) URL or null",
        )
        self.assertEqual(self.problem({"results": "many"}), "results: must be a list")
        self.assertEqual(self.problem([]), "source page: must be an object")

    def test_it_takes_addresses_and_names_as_sshd_writes_them(self):
        addresses = ("203.0.113.9", "2001:db8::1", "fe80::1%eth0", "::ffff:203.0.113.9")
        names = ("host-203-0-113-9.example.net", "UNKNOWN", "203.0.113", "203.0.113.009")
        for ip in addresses + names:
            with self.subTest(ip):
                rows, _ = answers.source_page({"next": None, "results": [source(ip=ip)]}, DAY, NOW)
                self.assertEqual(rows[0]["ip"], ip)
                # Only an address counts in a fleet's distinct addresses.
                self.assertEqual(rows[0]["is_address"], ip in addresses)

    def test_it_takes_a_long_session_that_ends_days_later(self):
        # A login that began on the day may end days later: its last line is bounded by now only.
        rows, _ = answers.source_page(
            {"next": None, "results": [source(last_seen="2026-03-03T08:00:00Z")]}, DAY, NOW
        )
        self.assertEqual(rows[0]["last_seen"], datetime(2026, 3, 3, 8, tzinfo=UTC))

    def test_it_refuses_a_day_that_does_not_hold_its_sources(self):
        day = answers.day_counts(counts(sessions=5, unique_sources=2, failed_attempts=9, accepted=1))
        rows = [{"ip": "192.0.2.1", "is_address": True, "sessions": 2, "failed_attempts": 4, "accepted": 1},
                {"ip": "2001:db8::1", "is_address": True, "sessions": 3, "failed_attempts": 5, "accepted": 0}]  # fmt: skip
        answers.day_with_sources(day, rows)  # exactly the day's: fine
        # Listed but not counted as addresses: a host name, and an address only refused.
        answers.day_with_sources(
            day,
            [{**rows[0], "sessions": 1}, rows[1], {**rows[0], "ip": "host.example.net", "is_address": False,
             "sessions": 1, "failed_attempts": 0, "accepted": 0}, {"ip": "192.0.2.9", "is_address": True,
             "sessions": 0, "failed_attempts": 0, "accepted": 0}],
        )  # fmt: skip
        cases = {
            "unique_sources: is 2 but the source list has 3 addresses": [
                *rows,
                {**rows[0], "ip": "192.0.2.3"},
            ],
            "sessions: is 5 but the day's sources add up to 6": [{**rows[0], "sessions": 3}, rows[1]],
            "accepted: is 1 but the day's sources add up to 2": [rows[0], {**rows[1], "accepted": 1}],
        }
        for expected, sources in cases.items():
            with self.subTest(expected), self.assertRaises(answers.InvalidAnswer) as caught:
                answers.day_with_sources(day, sources)
            self.assertEqual(str(caught.exception), expected)


class DayTests(unittest.TestCase):
    def test_it_reads_a_range_and_a_day_with_its_top_users(self):
        self.assertEqual(
            answers.day_range({"host": "web1", "days": [counts()]}),
            [{**counts(), "date": date(2026, 3, 2)}],
        )
        users = [{"user": " admin", "sessions": 2, "failed_attempts": 4, "accepted": 0}]
        detail = answers.day_detail({**counts(), "host": "web1", "top_sources": [], "top_users": users})
        self.assertEqual(detail["top_users"], users)  # a user name is kept exactly, spaces and all
        self.assertEqual(detail["date"], date(2026, 3, 2))

    def test_it_refuses_a_bad_day(self):
        cases = {
            "days[0].date: must be a date as YYYY-MM-DD": counts(date="2026-02-30"),
            "days[0].date: must be a date as YYYY-MM-DD ": counts(date="20260302"),
            "days[0].unique_sources: must be a whole number from 0 to 10^12": counts(unique_sources=None),
            "days[0].preauth_only: must be a whole number from 0 to 10^12": counts(preauth_only=1.5),
            # Counts that contradict each other: every one of them is a share of the connections.
            "days[0].accepted: must not be more than the day's sessions (5)": counts(accepted=6),
            "days[0].unique_sources: must not be more than the day's sessions (5)": counts(unique_sources=6),
            "days[0].sessions: must be at least accepted + failed_sessions + preauth_only": counts(
                accepted=2, failed_sessions=3, preauth_only=1
            ),
            "days[0].failed_sessions: must not be more than failed_attempts": counts(failed_attempts=2),
        }
        for expected, row in cases.items():
            with self.subTest(expected), self.assertRaises(answers.InvalidAnswer) as caught:
                answers.day_range({"days": [row]})
            self.assertEqual(str(caught.exception), expected.strip())
        with self.assertRaisesRegex(answers.InvalidAnswer, "^days: must have at most 400 items$"):
            answers.day_range({"days": [counts()] * 401})
        with self.assertRaisesRegex(answers.InvalidAnswer, "^top_users: must have at most 10 items$"):
            answers.day_detail({**counts(), "top_users": [{"user": "u"}] * 11})
        user = {"user": "root", "sessions": 1, "failed_attempts": 10, "accepted": 0}
        with self.assertRaisesRegex(
            answers.InvalidAnswer,
            r"^top_users\[0\].failed_attempts: must not be more than the day's failed_attempts \(9\)$",
        ):
            answers.day_detail({**counts(), "top_users": [user]})


class HealthTests(unittest.TestCase):
    def test_it_sums_the_sources_and_keeps_the_latest_event(self):
        health = answers.health(
            {
                "host": "Web1.example.com ",
                "agent_version": "0.2.0",
                "following": True,
                "sources": [
                    {"unread_bytes": 10, "malformed_lines": 1, "unknown_last_24h": 0, "last_event_at": SEEN},
                    {
                        "unread_bytes": None,
                        "malformed_lines": 2,
                        "last_event_at": "2026-03-02T14:00:00+01:00",
                    },
                    {"unread_bytes": 5, "last_event_at": None},
                ],
            },
            NOW,
        )
        self.assertEqual(
            health,
            {
                "host": "web1.example.com",  # compared with other entries' in one spelling
                "agent_version": "0.2.0",
                "following": True,
                "source_problem": None,
                "unread_bytes": 15,
                "malformed_lines": 3,
                "unknown_last_24h": 0,
                "last_event_at": datetime(2026, 3, 2, 13, tzinfo=UTC),
            },
        )
        quiet = answers.health({"agent_version": "0.2.0", "sources": []}, NOW)
        # An agent that does not say its name (older ones) is known by its URL alone.
        self.assertEqual(
            (quiet["host"], quiet["following"], quiet["unread_bytes"], quiet["last_event_at"]),
            (None, False, None, None),
        )

    def test_it_refuses_a_bad_health(self):
        cases = {
            "following: must be true or false": {"agent_version": "1", "following": "yes", "sources": []},
            "agent_version: must be at most 40 characters": {"agent_version": "1" * 41, "sources": []},
            "sources[0].unread_bytes: must be a whole number from 0 to 10^12": {
                "agent_version": "1",
                "sources": [{"unread_bytes": -1}],
            },
            "sources: must be a list": {"agent_version": "1"},
            "host: must be a string": {"host": ["web1"], "agent_version": "1", "sources": []},
            "host: must not be blank": {"host": " ", "agent_version": "1", "sources": []},
            "sources[0].last_event_at: must be between 2006-02-16 09:00 and 2026-03-04 09:00 UTC": {
                "agent_version": "1",
                "sources": [{"last_event_at": "9999-12-31T23:59:59-14:00"}],
            },
        }
        for expected, data in cases.items():
            with self.subTest(expected), self.assertRaises(answers.InvalidAnswer) as caught:
                answers.health(data, NOW)
            self.assertEqual(str(caught.exception), expected)
