from __future__ import annotations

import hashlib
import hmac
import json
import unittest

from alerting import formatting

HOSTILE = "<!channel> @here <http://evil.example|click> `x` <@U123>\nSubject: injected"


def alert(**fields) -> dict:
    base = {
        "rule": "Brute force",
        "severity": "warning",
        "summary": f"203.0.113.9 failed 120 attempts; user names tried: {HOSTILE}.",
        "address": "203.0.113.9",
        "user": HOSTILE,
        "hosts": ["web1", "web2"],
        "first_seen": "2026-03-02T10:00:00+00:00",
        "last_seen": "2026-03-02T10:05:00+00:00",
        "count": 1,
        "url": "https://alpha.example/alerts/?alert=7",
        "key": HOSTILE,
    }
    return {**base, **fields}


class WebhookTests(unittest.TestCase):
    def test_it_sends_exactly_the_contract_fields_in_order(self):
        body = json.loads(formatting.webhook_body(alert()))
        self.assertEqual(list(body), ["rule", "severity", "summary", "address", "user", "hosts", "first_seen",
                                      "last_seen", "count", "url"])  # fmt: skip
        # Attacker text travels as a JSON string, unchanged.
        self.assertEqual(body["user"], HOSTILE)

    def test_it_signs_the_raw_body_with_hmac_sha256(self):
        body = formatting.webhook_body(alert())
        expected = hmac.new(b"s" * 16, body, hashlib.sha256).hexdigest()
        self.assertEqual(formatting.signature(body, "s" * 16), f"sha256={expected}")


class SlackTests(unittest.TestCase):
    def test_it_never_lets_attacker_text_become_a_mention_or_link(self):
        text = json.loads(formatting.slack_body(alert()))["text"]
        # Slack's control sequences all start with "<": only our own link may have one.
        self.assertEqual(text.count("<"), 1)
        self.assertIn("<https://alpha.example/alerts/?alert=7|Open the alert in Alpha>", text)
        self.assertIn("&lt;!channel&gt;", text)
        self.assertIn("&lt;http://evil.example|click&gt;", text)
        self.assertNotIn("@here", text)  # a word joiner follows every @
        self.assertIn("@\u2060here", text)
        # Inside code spans, which no backtick of the attacker's can close.
        self.assertIn("`203.0.113.9`", text)
        self.assertNotIn("`x`", text)
        # One line per part: a newline in a user name cannot start a line of its own.
        self.assertEqual(len(text.splitlines()), 4)

    def test_it_escapes_ampersands_first(self):
        self.assertEqual(formatting.slack_code("a&lt;b"), "`a&amp;lt;b`")


class EmailTests(unittest.TestCase):
    def test_it_keeps_the_subject_on_one_line(self):
        subject = formatting.email_subject(alert())
        self.assertNotIn("\n", subject)
        self.assertIn("[U+000A]Subject: injected", subject)
        self.assertLessEqual(len(subject), formatting.SUBJECT_LENGTH)

    def test_it_writes_attacker_text_as_plain_text(self):
        text = formatting.email_text(alert(user="admin\u202etxt.exe"))
        self.assertIn("User:       admin[U+202E]txt.exe", text)
        self.assertIn("<!channel>", text)  # plain text: nothing to escape, nothing interpreted
