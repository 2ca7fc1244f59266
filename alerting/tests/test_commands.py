from __future__ import annotations

import io
from datetime import timedelta

from django.core.management import call_command
from django.test import LiveServerTestCase, override_settings
from django.utils import timezone

from alerting.models import SENT, WEBHOOK, Alert, Channel, Delivery, Rule
from collector.models import AgentState
from collector.tests.helpers import write_log
from collector.tests.logs import brute_force
from inventory_app.models import Host
from inventory_app.tests.agents import TOKEN

from .fleet import local_now
from .receivers import SECRET, Receiver
from .test_rules import AGENT


@override_settings(**AGENT)
class PollHostsTests(LiveServerTestCase):
    def test_it_evaluates_and_delivers_before_poll_hosts_once_exits(self):
        receiver = Receiver()
        self.addCleanup(receiver.close)
        channel = Channel.objects.create(kind=WEBHOOK, name="hook", url=receiver.url, secret=SECRET)
        for rule in Rule.objects.all():
            rule.channels.add(channel)
        write_log(brute_force(local_now() - timedelta(minutes=10), 100, "203.0.113.9", "root", attempts=150))
        AgentState.objects.update_or_create(pk=1, defaults={"heartbeat_at": timezone.now()})
        Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)
        out = io.StringIO()
        call_command("poll_hosts", "--once", stdout=out)
        # When the command returns, the alert is stored and was delivered, signed.
        self.assertEqual(Alert.objects.get().key, "203.0.113.9")
        self.assertEqual(Delivery.objects.get().state, SENT)
        self.assertEqual(len(receiver.received), 1)
        self.assertTrue(receiver.received[0]["signed"])
        self.assertIn("Alerts: 1 new delivery(ies); 1 sent", out.getvalue())
        # A second round within the quiet period sends nothing.
        call_command("poll_hosts", "--once", stdout=io.StringIO())
        self.assertEqual((Alert.objects.count(), len(receiver.received)), (1, 1))
