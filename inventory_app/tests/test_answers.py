"""The checks on what agents answer: plain values out, one named problem for anything else."""

from __future__ import annotations

import json
import unittest
from datetime import UTC, date, datetime, timedelta, timezone

from inventory_app import answers

SEEN = "2026-03-02T12:00:00Z"


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
            answers.source_page(json.loads(json.dumps(page)))
        return str(caught.exception)

    def test_it_turns_a_page_into_plain_values(self):
        rows, next_url = answers.source_page(
            {"next": "https://web1:8001/api/v1/sources/2026-03-02/?cursor=abc", "results": [source()]}
        )
        self.assertEqual(next_url, "https://web1:8001/api/v1/sources/2026-03-02/?cursor=abc")
        self.assertEqual(
            rows,
            [
                {
                    "ip": "203.0.113.9",
                    "sessions": 3,
                    "failed_attempts": 7,
                    "accepted": 0,
                    "users": ["root", "<img src=x onerror=alert(1)>"],  # data, kept as sent
                    "first_seen": datetime(2026, 3, 2, 12, tzinfo=UTC),
                    "last_seen": datetime(2026, 3, 2, 13, tzinfo=timezone(timedelta(hours=1))),
                }
            ],
        )
        self.assertEqual(answers.source_page({"next": None, "results": []}), ([], None))

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
        }
        for expected, row in cases.items():
            with self.subTest(expected), self.assertRaises(answers.InvalidAnswer) as caught:
                answers.day_range({"days": [row]})
            self.assertEqual(str(caught.exception), expected.strip())
        with self.assertRaisesRegex(answers.InvalidAnswer, "^days: must have at most 400 items$"):
            answers.day_range({"days": [counts()] * 401})
        with self.assertRaisesRegex(answers.InvalidAnswer, "^top_users: must have at most 10 items$"):
            answers.day_detail({**counts(), "top_users": [{"user": "u"}] * 11})


class HealthTests(unittest.TestCase):
    def test_it_sums_the_sources_and_keeps_the_latest_event(self):
        health = answers.health(
            {
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
            }
        )
        self.assertEqual(
            health,
            {
                "agent_version": "0.2.0",
                "following": True,
                "unread_bytes": 15,
                "malformed_lines": 3,
                "unknown_last_24h": 0,
                "last_event_at": datetime(2026, 3, 2, 13, tzinfo=UTC),
            },
        )
        quiet = answers.health({"agent_version": "0.2.0", "sources": []})
        self.assertEqual(
            (quiet["following"], quiet["unread_bytes"], quiet["last_event_at"]), (False, None, None)
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
        }
        for expected, data in cases.items():
            with self.subTest(expected), self.assertRaises(answers.InvalidAnswer) as caught:
                answers.health(data)
            self.assertEqual(str(caught.exception), expected)
