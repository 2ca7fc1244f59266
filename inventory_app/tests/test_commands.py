"""poll_hosts, as run-system.sh and an operator run it: a subprocess against the test database."""

from __future__ import annotations

import signal
import time
from dataclasses import replace

from django.test import TransactionTestCase

from collector.tests.helpers import manage, popen_manage
from inventory_app.models import NEVER_POLLED, OK, Host, HostDay

from .agents import ScriptedAgent

TOKEN = "command-token-0123456789"
SHORT = {"ALPHA_POLL_CONNECT_TIMEOUT": "1", "ALPHA_POLL_READ_TIMEOUT": "1", "ALPHA_POLL_HEALTH_TIMEOUT": "1"}


class PollHostsTests(TransactionTestCase):
    def test_it_polls_one_round_and_says_how_it_went(self):
        agent = ScriptedAgent(self)
        host = Host.objects.create(name="web1", url=agent.url, token=TOKEN)
        Host.objects.create(name="off", url=agent.url, token=TOKEN, enabled=False)
        done = manage("poll_hosts", "--once")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertRegex(done.stdout, r"^Polled in \d+\.\d s: 1 ok\.\n$")
        host.refresh_from_db()
        self.assertEqual(host.state, OK)
        self.assertEqual(HostDay.objects.filter(host=host).count(), len(agent.days))

    def test_it_refuses_a_bad_interval_in_one_line(self):
        done = manage("poll_hosts", "--interval", "0")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stderr.strip(), "CommandError: --interval must be at least 1 second.")

    def test_sigterm_ends_a_round_at_once_and_releases_its_hosts(self):
        # An agent trickling its answers: a round would wait for the request deadline (30 s).
        agent = ScriptedAgent(self, hostile=lambda path, answer: replace(answer, trickle=0.2))
        host = Host.objects.create(name="web1", url=agent.url, token=TOKEN)
        poller = popen_manage("poll_hosts", "--interval", "60", env=SHORT)
        self.addCleanup(lambda: poller.poll() is None and poller.kill())
        deadline = time.monotonic() + 20
        while not agent.paths:
            self.assertIsNone(poller.poll(), "poll_hosts exited")
            self.assertLess(time.monotonic(), deadline, "the round never reached the agent")
            time.sleep(0.05)
        time.sleep(0.5)
        stopped = time.monotonic()
        poller.send_signal(signal.SIGTERM)
        out, err = poller.communicate(timeout=10)
        self.assertLess(time.monotonic() - stopped, 3)
        self.assertEqual(poller.returncode, 0, err)
        self.assertIn("1 stopped", out)
        self.assertNotIn("Traceback", err)
        # A stopped poll records nothing and leaves no claim: the next round polls the host.
        host.refresh_from_db()
        self.assertEqual((host.state, host.last_error, host.polling_since), (NEVER_POLLED, "", None))
