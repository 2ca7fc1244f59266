"""Rules 1 and 2 and the whole path from two hosts' logs to a signed webhook, on data polled
over HTTP from real agents (the project's own agent, each in processes of its own with its own
database; inventory_app.tests.agents.RealAgent)."""

from __future__ import annotations

import io
from datetime import timedelta

from django.core.management import call_command

from alerting import delivery, rules
from alerting.models import PENDING, SENT, WEBHOOK, Alert, Channel, Delivery, Rule
from collector.tests.logs import login, syslog
from inventory_app.models import HostLogin

from .fleet import RealAgentsTestCase, local_now
from .receivers import SECRET, Receiver


def password_login(start, pid: int, ip: str, user: str) -> list[str]:
    port = 50000 + pid % 10000
    return [
        syslog(start, pid, f"Accepted password for {user} from {ip} port {port} ssh2"),
        syslog(start, pid, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
    ]


def failures(start, pid: int, ip: str, user: str, attempts: int) -> list[str]:
    port = 40000 + pid % 10000
    lines = [syslog(start + timedelta(seconds=n), pid, f"Failed password for {user} from {ip} port {port} ssh2")
             for n in range(attempts)]  # fmt: skip
    end = start + timedelta(seconds=attempts)
    return lines + [
        syslog(end, pid, f"Connection closed by authenticating user {user} {ip} port {port} [preauth]")
    ]


class LoginAfterFailuresTests(RealAgentsTestCase):
    def test_it_names_every_host_it_failed_on_and_the_one_it_got_in_on(self):
        now = local_now()
        agents = self.agents({
            "web1": failures(now - timedelta(minutes=40), 100, "198.51.100.7", "<b>admin</b>", 4),
            "web2": failures(now - timedelta(minutes=30), 200, "198.51.100.7", "root", 2),
            "web3": password_login(now - timedelta(minutes=10), 300, "198.51.100.7", "<b>admin</b>"),
        })  # fmt: skip
        self.poll(agents)
        self.assertEqual(HostLogin.objects.get().user, "<b>admin</b>")
        rules.evaluate()
        [alert] = Alert.objects.filter(rule__kind=rules.LOGIN_AFTER_FAILURES)
        self.assertEqual(
            (alert.key, alert.address, alert.user), ("198.51.100.7", "198.51.100.7", "<b>admin</b>")
        )
        self.assertEqual(alert.host_list(), ["web1", "web2", "web3"])
        self.assertIn("logged in as <b>admin</b> on web3", alert.summary)
        self.assertIn("after failing 6 attempts on 2 host(s) (web1, web2)", alert.summary)
        # Evaluated again (the next round): the same login is the same campaign, nothing new.
        rules.evaluate()
        self.assertEqual(Alert.objects.get(pk=alert.pk).count, 1)

    def test_it_does_not_fire_on_failures_after_the_login_nor_outside_the_window(self):
        now = local_now()
        agents = self.agents({
            # Failed only after getting in: not "logged in after failing", though the same day.
            "web1": password_login(now - timedelta(minutes=50), 100, "198.51.100.8", "deploy")
            + failures(now - timedelta(minutes=20), 101, "198.51.100.8", "deploy", 3),
            # Failed 26 hours before its login: outside the 24-hour window.
            "web2": failures(now - timedelta(hours=27), 200, "203.0.113.5", "deploy", 3)
            + password_login(now - timedelta(minutes=55), 201, "203.0.113.5", "deploy"),
        })  # fmt: skip
        self.poll(agents)
        self.assertEqual(HostLogin.objects.count(), 2)
        rules.evaluate()
        self.assertEqual(list(Alert.objects.filter(rule__kind=rules.LOGIN_AFTER_FAILURES)), [])


class NewLoginTests(RealAgentsTestCase):
    def test_it_fires_on_root_and_on_a_new_network_for_a_user_but_not_on_a_known_one(self):
        now = local_now()
        agents = self.agents({
            "web1": login(now - timedelta(days=10), 100, 101, "192.0.2.10", user="deploy")
            + login(now - timedelta(minutes=30), 110, 111, "192.0.2.77", user="deploy")  # same /24
            + password_login(now - timedelta(minutes=20), 120, "203.0.113.40", "root"),
            "web2": login(now - timedelta(minutes=10), 200, 201, "2001:db8:5::9", user="deploy"),  # new
        })  # fmt: skip
        self.poll(agents)
        rules.evaluate()
        found = {a.key: a for a in Alert.objects.filter(rule__kind=rules.NEW_LOGIN)}
        self.assertEqual(sorted(found), ["deploy:2001:db8:5::/64", "root:web1"])
        self.assertIn("root logged in on web1 from 203.0.113.40", found["root:web1"].summary)
        self.assertEqual(found["deploy:2001:db8:5::/64"].host_list(), ["web2"])
        # The deploy login of ten days ago came before any history was polled: it is older than
        # the rules' look-back, never reported as new.
        self.assertNotIn("deploy:192.0.2.0/24", found)


class AlertEndToEndTests(RealAgentsTestCase):
    def test_it_raises_one_signed_alert_in_one_round_and_delivers_it_once_the_receiver_is_back(self):
        # An address fails on one host and logs in on the other; the receiver is down at first.
        now = local_now()
        agents = self.agents({
            "db1": failures(now - timedelta(minutes=30), 100, "198.51.100.66", "postgres", 5),
            "web1": password_login(now - timedelta(minutes=5), 200, "198.51.100.66", "postgres"),
        })  # fmt: skip
        for agent in agents.values():
            agent.host()
        receiver = Receiver()
        url, port = receiver.url, receiver.port
        receiver.close()  # nothing listens on its port now
        channel = Channel.objects.create(kind=WEBHOOK, name="ops", url=url, secret=SECRET)
        for rule in Rule.objects.all():
            rule.channels.set([channel])
        out = io.StringIO()
        call_command("poll_hosts", "--once", stdout=out)
        # Exactly one alert: the login after failures (not also "a new address for postgres").
        [alert] = Alert.objects.all()
        self.assertEqual(alert.rule.kind, rules.LOGIN_AFTER_FAILURES)
        # Stored, its delivery tried once and waiting for its retry.
        [pending] = Delivery.objects.filter(alert=alert)
        self.assertEqual((pending.state, pending.attempts), (PENDING, 1))
        self.assertTrue(pending.last_error)
        # A second round within the quiet period raises nothing new.
        call_command("poll_hosts", "--once", stdout=io.StringIO())
        self.assertEqual(Alert.objects.count(), 1)
        # The receiver is back; the retry comes due.
        receiver = Receiver(port=port)
        self.addCleanup(receiver.close)
        Delivery.objects.filter(pk=pending.pk).update(
            next_attempt_at=pending.next_attempt_at - timedelta(hours=1)
        )
        delivery.deliver_due()
        self.assertEqual(Delivery.objects.get(pk=pending.pk).state, SENT)
        [got] = receiver.received
        self.assertTrue(got["signed"])
        self.assertEqual(got["json"]["rule"], "Login after failures")
        body = got["json"]
        self.assertEqual(list(body), ["rule", "severity", "summary", "address", "user", "hosts", "first_seen",
                                      "last_seen", "count", "url"])  # fmt: skip
        self.assertEqual(
            (body["address"], body["user"], body["hosts"]), ("198.51.100.66", "postgres", ["db1", "web1"])
        )
        self.assertEqual(body["count"], 1)
