from __future__ import annotations

from datetime import timedelta

from django.test import LiveServerTestCase, override_settings
from django.utils import timezone

from alerting import tasks
from alerting.models import SENT, WEBHOOK, Alert, Channel, Delivery, Rule
from collector.models import AgentState
from collector.tests.helpers import write_log
from collector.tests.logs import brute_force
from inventory_app import tasks as polling_tasks
from inventory_app.models import Host
from inventory_app.tests.agents import TOKEN
from inventory_app.tests.test_tasks import run_eagerly

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

    def test_a_round_queues_the_evaluation_which_queues_the_deliveries(self):
        # Eagerly, the evaluation's countdown (the round's timeout) is not waited for.
        run_eagerly(self)
        self.assertEqual(polling_tasks.poll_all_hosts(), 1)
        self.assertEqual(Alert.objects.get().key, "203.0.113.9")
        self.assertEqual(Delivery.objects.get().state, SENT)
        self.assertEqual(len(self.receiver.received), 1)

    def test_the_evaluation_task_called_as_a_function_sweeps_due_deliveries(self):
        run_eagerly(self)
        polling_tasks.poll_host(Host.objects.get().pk)
        self.assertEqual(tasks.evaluate(), 1)
        self.assertEqual(tasks.evaluate(), 0)  # sent: nothing due any more
        self.assertEqual(len(self.receiver.received), 1)
