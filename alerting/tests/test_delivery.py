from __future__ import annotations

import json
import time
from datetime import timedelta

from celery.exceptions import Retry
from django.core import mail
from django.test import TestCase, override_settings
from django.utils import timezone

from alerting import delivery, rules, tasks
from alerting.channels import ENV_EMAIL, ENV_WEBHOOK, sync_env_channels
from alerting.models import EMAIL, FAILED, PENDING, SENT, SLACK, WEBHOOK, Alert, Channel, Delivery, Rule
from inventory_app.tests.stored import make_host, store_source

from .receivers import SECRET, Receiver, SilentReceiver

HOSTILE = "<b>x</b> <!channel> @here\nBcc: victim@example.com"
FAST_RETRIES = {"ALPHA_ALERT_RETRY_SECONDS": 0.05, "ALPHA_ALERT_RETRY_MAX_SECONDS": 0.2}


def brute_force_rows(ip: str = "203.0.113.9", failed: int = 150, users=None, minutes_ago: int = 10) -> None:
    """An address over the brute-force threshold on one host, seen `minutes_ago`."""
    host = rules.Host.objects.filter(name="web1").first() or make_host("web1")
    seen = timezone.now() - timedelta(minutes=minutes_ago + 5)
    store_source(host, ip, 5, failed, 0, day=timezone.localdate(seen), users=users or ["root"], seen=seen)


def only_channel(**fields) -> Channel:
    channel = Channel.objects.create(**fields)
    for rule in Rule.objects.all():
        rule.channels.set([channel])
    return channel


@override_settings(**FAST_RETRIES)
class WebhookDeliveryTests(TestCase):
    def setUp(self):
        self.receiver = Receiver()
        self.addCleanup(self.receiver.close)
        self.channel = only_channel(kind=WEBHOOK, name="hook", url=self.receiver.url, secret=SECRET)

    def test_it_stores_the_alert_before_sending_and_signs_the_body(self):
        brute_force_rows(users=[HOSTILE])
        new = rules.evaluate()
        # Stored first: the alert and its pending delivery exist, nothing was sent yet.
        self.assertEqual(len(new), 1)
        self.assertEqual(Delivery.objects.get().state, PENDING)
        self.assertEqual(self.receiver.received, [])
        self.assertEqual(delivery.deliver_due(), {SENT: 1, PENDING: 0, FAILED: 0})
        [got] = self.receiver.received
        self.assertTrue(got["signed"])
        self.assertEqual(got["content_type"], "application/json")
        alert = Alert.objects.get()
        self.assertEqual(
            got["json"],
            {
                "rule": "Brute force",
                "severity": "warning",
                "summary": alert.summary,
                "address": "203.0.113.9",
                "user": "",
                "hosts": ["web1"],
                "first_seen": alert.first_seen.isoformat(),
                "last_seen": alert.last_seen.isoformat(),
                "count": 1,
                "url": f"http://127.0.0.1:8000/alerts/?alert={alert.pk}",
            },
        )
        self.assertIn(HOSTILE, got["json"]["summary"])  # a JSON string, as logged
        sent = Delivery.objects.get()
        self.assertEqual((sent.state, sent.attempts, sent.last_error), (SENT, 1, ""))
        self.assertIsNotNone(sent.sent_at)

    def test_it_sends_nothing_for_a_second_evaluation_within_the_quiet_period(self):
        brute_force_rows(minutes_ago=30)
        rules.evaluate()
        delivery.deliver_due()
        # The same evidence again, then new activity 20 minutes later: one campaign.
        self.assertEqual(rules.evaluate(), [])
        rules.HostSource.objects.update(last_seen=timezone.now() - timedelta(minutes=5))
        self.assertEqual(rules.evaluate(), [])
        self.assertEqual(delivery.deliver_due(), {SENT: 0, PENDING: 0, FAILED: 0})
        self.assertEqual(len(self.receiver.received), 1)
        alert = Alert.objects.get()
        self.assertEqual(alert.count, 2)  # the repeat was counted

    def test_it_raises_a_new_alert_for_activity_after_the_quiet_period(self):
        brute_force_rows(minutes_ago=200)
        rule = Rule.objects.get(kind=rules.BRUTE_FORCE)
        rule.window = timedelta(hours=6)
        rule.save()
        rules.evaluate()
        rules.HostSource.objects.update(last_seen=timezone.now() - timedelta(minutes=1))
        self.assertEqual(len(rules.evaluate()), 1)
        self.assertEqual(Alert.objects.count(), 2)

    def test_it_delivers_to_a_receiver_that_was_down_once_it_is_back(self):
        port = self.receiver.port
        self.receiver.close()
        brute_force_rows()
        rules.evaluate()
        self.assertEqual(delivery.deliver_due(), {SENT: 0, PENDING: 1, FAILED: 0})
        pending = Delivery.objects.get()
        self.assertEqual(pending.attempts, 1)
        self.assertIn("Cannot post to", pending.last_error)
        # Not due before its backoff is over.
        self.assertEqual(delivery.deliver_due(), {SENT: 0, PENDING: 0, FAILED: 0})
        back = Receiver(port=port)
        self.addCleanup(back.close)
        time.sleep(0.06)
        self.assertEqual(delivery.deliver_due(), {SENT: 1, PENDING: 0, FAILED: 0})
        self.assertEqual(len(back.received), 1)
        self.assertTrue(back.received[0]["signed"])
        self.assertEqual(Delivery.objects.get().attempts, 2)

    def test_it_doubles_the_wait_and_gives_up_after_the_last_attempt(self):
        self.receiver.status = 500
        brute_force_rows()
        rules.evaluate()
        waits = []
        with override_settings(ALPHA_ALERT_MAX_ATTEMPTS=4):
            for _ in range(4):
                Delivery.objects.update(next_attempt_at=timezone.now())
                waits.append(delivery.attempt(Delivery.objects.get().pk))
        self.assertEqual(waits, [0.05, 0.1, 0.2, None])
        failed = Delivery.objects.get()
        self.assertEqual((failed.state, failed.attempts), (FAILED, 4))
        self.assertIn("answered HTTP 500: ok", failed.last_error)
        # Nothing is lost: "Retry now" makes it due again, and it is sent once the receiver is well.
        self.receiver.status = 200
        self.assertEqual(delivery.retry_now([failed.pk]), 1)
        self.assertEqual(delivery.deliver_due()[SENT], 1)

    @override_settings(ALPHA_ALERT_TIMEOUT=0.5)
    def test_it_gives_up_on_a_receiver_that_never_answers_within_the_timeout(self):
        silent = SilentReceiver()
        self.addCleanup(silent.close)
        Channel.objects.filter(pk=self.channel.pk).update(url=silent.url)
        brute_force_rows()
        rules.evaluate()
        started = time.monotonic()
        delivery.deliver_due()
        self.assertLess(time.monotonic() - started, 3)
        self.assertIn("did not answer within 0.5 s", Delivery.objects.get().last_error)

    def test_it_never_sends_a_claimed_delivery_twice(self):
        brute_force_rows()
        [delivery_id] = rules.evaluate()
        self.assertTrue(delivery.claim(delivery_id))
        # Another worker (a retry and a sweep at once) finds it taken.
        self.assertIsNone(delivery.attempt(delivery_id))
        self.assertEqual(self.receiver.received, [])

    def test_it_retries_the_deliver_task_at_the_backoff(self):
        self.receiver.status = 503
        brute_force_rows()
        [delivery_id] = rules.evaluate()
        with self.assertRaises(Retry):
            tasks.deliver(delivery_id)
        # Back when the backoff is over: the database says when.
        self.assertGreater(Delivery.objects.get().next_attempt_at, timezone.now())
        self.receiver.status = 200
        Delivery.objects.update(next_attempt_at=timezone.now())
        tasks.deliver(delivery_id)
        self.assertEqual(Delivery.objects.get().state, SENT)


class SlackDeliveryTests(TestCase):
    def test_it_posts_text_where_attacker_text_is_no_mention_or_link(self):
        receiver = Receiver()
        self.addCleanup(receiver.close)
        only_channel(kind=SLACK, name="slack", url=receiver.url)
        brute_force_rows(users=["<!channel>", "@here", "<http://evil.example|login>"])
        rules.evaluate()
        delivery.deliver_due()
        text = receiver.received[0]["json"]["text"]
        self.assertNotIn("<!channel>", text)
        self.assertNotIn("<http://evil", text)
        self.assertNotIn("@here", text)
        self.assertIn("&lt;!channel&gt;", text)


class EmailDeliveryTests(TestCase):
    def test_it_mails_attacker_text_as_plain_text(self):
        only_channel(kind=EMAIL, name="mail", email_to="ops@example.com, sec@example.com")
        brute_force_rows(users=[HOSTILE])
        rules.evaluate()
        self.assertEqual(delivery.deliver_due()[SENT], 1)
        [message] = mail.outbox
        self.assertEqual(message.to, ["ops@example.com", "sec@example.com"])
        self.assertEqual(message.subject, "[Alpha] Brute force (warning): 203.0.113.9")
        self.assertEqual(message.content_subtype, "plain")
        self.assertFalse(getattr(message, "alternatives", None))  # no HTML part
        self.assertEqual(message.bcc, [])
        # The name as text, its newline written out: it starts no header and no line.
        self.assertIn("<b>x</b> <!channel> @here[U+000A]Bcc: victim@example.com", message.body)


class EnvChannelTests(TestCase):
    @override_settings(
        ALPHA_ALERT_WEBHOOK_URL="https://hooks.example/alpha",
        ALPHA_ALERT_WEBHOOK_SECRET=SECRET,
        ALPHA_ALERT_EMAIL_TO=["ops@example.com"],
    )
    def test_it_creates_the_environment_channels_once_on_every_rule(self):
        created = sync_env_channels()
        self.assertEqual([c for _, c in created], [True, True])
        for rule in Rule.objects.all():
            self.assertEqual(set(rule.channels.values_list("name", flat=True)), {ENV_WEBHOOK, ENV_EMAIL})
        # An admin detaches one rule; the next migrate keeps that, and only updates the channel.
        rule = Rule.objects.get(kind=rules.BRUTE_FORCE)
        rule.channels.clear()
        with override_settings(ALPHA_ALERT_WEBHOOK_URL="https://hooks.example/v2"):
            self.assertEqual([c for _, c in sync_env_channels()], [False, False])
        self.assertEqual(Channel.objects.get(name=ENV_WEBHOOK).url, "https://hooks.example/v2")
        self.assertEqual(Channel.objects.count(), 2)
        self.assertEqual(rule.channels.count(), 0)
        self.assertEqual(
            json.loads(json.dumps(Channel.objects.get(name=ENV_EMAIL).recipients())), ["ops@example.com"]
        )
