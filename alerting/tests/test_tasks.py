from __future__ import annotations

import time
from datetime import timedelta

from django.test import LiveServerTestCase, override_settings
from django.utils import timezone

from alerting import tasks
from alerting.models import SENT, WEBHOOK, Alert, Channel, Delivery, Rule
from collector.models import AgentState
from collector.tests.helpers import write_log
from collector.tests.logs import brute_force
from inventory_app import tasks as polling_tasks
from inventory_app.models import OK, Host
from inventory_app.tests.agents import TOKEN
from inventory_app.tests.test_tasks import CeleryProcessesTestCase, run_eagerly

from .fleet import local_now
from .receivers import SECRET, Receiver
from .test_rules import AGENT


@override_settings(**AGENT)
class CeleryRoundTests(LiveServerTestCase):
    def setUp(self):
        self.receiver = Receiver()
        self.addCleanup(self.receiver.close)
        channel = Channel.objects.create(kind=WEBHOOK, name="hook", url=self.receiver.url, secret=SECRET)
        for rule in Rule.objects.all():
            rule.channels.add(channel)
        write_log(brute_force(local_now() - timedelta(minutes=10), 100, "203.0.113.9", "root", attempts=150))
        AgentState.objects.update_or_create(pk=1, defaults={"heartbeat_at": timezone.now()})
        Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)

    def test_it_queues_the_evaluation_after_a_round_and_it_queues_the_deliveries(self):
        # Eagerly, the evaluation's countdown (the round's timeout) is not waited for.
        run_eagerly(self)
        self.assertEqual(polling_tasks.poll_all_hosts(), 1)
        self.assertEqual(Alert.objects.get().key, "203.0.113.9")
        self.assertEqual(Delivery.objects.get().state, SENT)
        self.assertEqual(len(self.receiver.received), 1)

    def test_it_sweeps_due_deliveries_when_the_evaluation_task_is_called_as_a_function(self):
        run_eagerly(self)
        polling_tasks.poll_host(Host.objects.get().pk)
        self.assertEqual(tasks.evaluate(), 1)
        self.assertEqual(tasks.evaluate(), 0)  # sent: nothing due any more
        self.assertEqual(len(self.receiver.received), 1)


@override_settings(**AGENT)
class CeleryWorkerTests(CeleryProcessesTestCase):
    """Beat and a worker in processes of their own: a round, then the evaluation task, then the
    delivery task posting to a receiver on loopback."""

    def test_it_evaluates_in_the_worker_after_the_round_and_delivers_a_signed_webhook(self):
        receiver = Receiver()
        self.addCleanup(receiver.close)
        channel = Channel.objects.create(kind=WEBHOOK, name="hook", url=receiver.url, secret=SECRET)
        for rule in Rule.objects.all():
            rule.channels.add(channel)
        # 150 failed passwords from one address in the last minutes: the brute-force rule fires.
        write_log(brute_force(local_now() - timedelta(minutes=10), 100, "203.0.113.9", "root", attempts=150))
        AgentState.objects.update_or_create(pk=1, defaults={"heartbeat_at": timezone.now()})
        host = Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)
        # A round every 4 s; alerting.evaluate is queued to run ALPHA_POLL_ROUND_TIMEOUT after it.
        self.start_worker_and_beat(every=4, ALPHA_POLL_ROUND_TIMEOUT="2")

        self.wait_for(lambda: Host.objects.get(pk=host.pk).state == OK, "poll of the host", 60)
        polled_at = Host.objects.get(pk=host.pk).last_poll_at
        self.wait_for(lambda: receiver.received, "webhook delivery", 30)
        # The receiver holds the request before the worker has its answer and records it.
        self.wait_for(lambda: Delivery.objects.filter(state=SENT).exists(), "delivery recorded as sent", 10)
        # The evaluation ran after the round (its countdown), in the worker: one alert, sent.
        alert = Alert.objects.get()
        self.assertEqual((alert.key, alert.host_list()), ("203.0.113.9", ["web1"]))
        self.assertGreaterEqual(alert.created_at, polled_at)
        self.assertEqual(Delivery.objects.get().state, SENT)
        # What reached the receiver: the alert's fields as JSON, signed with the channel's secret.
        delivered = receiver.received[0]
        self.assertTrue(delivered["signed"])
        self.assertEqual(delivered["content_type"], "application/json")
        self.assertEqual(
            (delivered["json"]["address"], delivered["json"]["hosts"], delivered["json"]["summary"]),
            ("203.0.113.9", ["web1"], alert.summary),
        )

        # The next round's evaluation (within the quiet period) folds into the alert, sends nothing.
        self.wait_for(lambda: Host.objects.get(pk=host.pk).last_poll_at > polled_at, "second round", 30)
        time.sleep(3)  # the evaluation's countdown, and a little
        self.assertEqual((Alert.objects.count(), len(receiver.received)), (1, 1))
