from __future__ import annotations

from datetime import timedelta

from django.test import LiveServerTestCase, TestCase, override_settings
from django.utils import timezone

from alerting import rules
from alerting.models import INFO, Alert, HostBaseline, Rule
from collector.models import AgentState
from collector.tests.helpers import write_log
from collector.tests.logs import brute_force, scanner
from inventory_app import polling
from inventory_app.models import DOWN, OK, STALE, Host
from inventory_app.tests.agents import TOKEN, closed_port_url
from inventory_app.tests.stored import make_host, store_source

from .fleet import RealAgentsTestCase, local_now

AGENT = {"ALPHA_AGENT_TOKEN": TOKEN, "ALPHA_POLL_READ_TIMEOUT": 2.0, "ALPHA_POLL_CONNECT_TIMEOUT": 1.0}


def keys(kind: str) -> list[str]:
    return sorted(Alert.objects.filter(rule__kind=kind).values_list("key", flat=True))


@override_settings(**AGENT)
class BruteForceLiveAgentTests(LiveServerTestCase):
    """Rule 3 on data polled from the project's own agent API (a live server reading real log lines)."""

    def poll(self, *names: str) -> None:
        for name in names:
            host = Host.objects.filter(name=name).first() or Host.objects.create(
                name=name, url=self.live_server_url, token=TOKEN
            )
            AgentState.objects.update_or_create(pk=1, defaults={"heartbeat_at": timezone.now()})
            self.assertEqual(polling.poll_host(host.pk), OK)

    def test_it_fires_on_more_than_n_failed_attempts_from_one_address(self):
        start = local_now() - timedelta(minutes=20)
        write_log(brute_force(start, 100, "203.0.113.9", "<script>x</script>", attempts=101))
        self.poll("web1")
        rules.evaluate()
        [alert] = Alert.objects.filter(rule__kind=rules.BRUTE_FORCE)
        self.assertEqual(
            (alert.key, alert.address, alert.host_list()), ("203.0.113.9", "203.0.113.9", ["web1"])
        )
        self.assertIn("failed 101 attempts on 1 host(s) (web1)", alert.summary)
        self.assertIn("user names tried: <script>x</script>", alert.summary)

    def test_it_does_not_fire_at_exactly_n_nor_outside_the_window(self):
        recent = local_now() - timedelta(minutes=20)
        # N = 100 is "more than 100": exactly 100 is a near miss; 300 two hours ago is outside.
        write_log(
            brute_force(recent, 100, "203.0.113.9", "root", attempts=100)
            + brute_force(
                local_now() - timedelta(hours=2, minutes=30), 200, "203.0.113.50", "root", attempts=300
            )
        )
        self.poll("web1")
        rules.evaluate()
        self.assertEqual(keys(rules.BRUTE_FORCE), [])


class BruteForceFleetTests(RealAgentsTestCase):
    """Rule 3 across hosts: real agents, each with its own log, polled over HTTP."""

    def test_it_fires_on_an_address_failing_on_k_hosts_and_not_on_k_minus_one(self):
        start = local_now() - timedelta(minutes=5)
        agents = self.agents(
            {name: brute_force(start, 100 + n, "198.51.100.23", "admin", attempts=2)
             for n, name in enumerate(("web1", "web2", "web3"))}
        )  # fmt: skip
        self.poll({name: agents[name] for name in ("web1", "web2")})
        rules.evaluate()
        self.assertEqual(keys(rules.BRUTE_FORCE), [])
        self.poll({"web3": agents["web3"]})
        rules.evaluate()
        [alert] = Alert.objects.filter(rule__kind=rules.BRUTE_FORCE)
        self.assertEqual(alert.host_list(), ["web1", "web2", "web3"])

    def test_it_never_takes_a_scanner_that_never_failed_for_brute_force(self):
        scans = [
            line
            for n in range(5)
            for line in scanner(local_now() - timedelta(minutes=n + 1), 300 + n, "192.0.2.77")
        ]
        self.poll(self.agents({name: scans for name in ("web1", "web2", "web3")}))
        rules.evaluate()
        self.assertEqual(keys(rules.BRUTE_FORCE), [])


class BruteForceNameTests(TestCase):
    def test_it_never_forms_an_address_alert_from_a_host_name(self):
        # PAM's rhost under UseDNS: chosen by whoever controls the PTR record.
        seen = timezone.now() - timedelta(minutes=10)
        for name in ("web1", "web2", "web3"):
            store_source(make_host(name), "evil.example", 0, 500, 0, day=timezone.localdate(seen), seen=seen)
        rules.evaluate()
        self.assertEqual(keys(rules.BRUTE_FORCE), [])


@override_settings(**AGENT)
class HostNeedsLookLiveAgentTests(LiveServerTestCase):
    """Rule 4 on host states polled from a live agent (or from no agent at all)."""

    def test_it_fires_after_m_failed_polls_and_not_before(self):
        host = Host.objects.create(name="gone", url=closed_port_url(), token=TOKEN)
        for _ in range(2):
            polling.poll_host(host.pk)
        rules.evaluate()
        self.assertEqual(keys(rules.HOST_NEEDS_LOOK), [])  # two failed rounds: a near miss (M = 3)
        polling.poll_host(host.pk)
        rules.evaluate()
        [alert] = Alert.objects.filter(rule__kind=rules.HOST_NEEDS_LOOK)
        self.assertEqual(alert.key, "gone:down")
        self.assertIn("3 polls failed in a row: Cannot connect to", alert.summary)
        # Still down next round: the same alert, counted, not a new one.
        polling.poll_host(host.pk)
        self.assertEqual(rules.evaluate(), [])
        alert.refresh_from_db()
        self.assertEqual((Alert.objects.count(), alert.count), (1, 2))
        self.assertEqual(Host.objects.get(pk=host.pk).state, DOWN)

    def test_it_fires_on_a_stale_agent(self):
        write_log(brute_force(local_now() - timedelta(minutes=5), 100, "203.0.113.9", "root"))
        host = Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)
        AgentState.objects.update_or_create(pk=1, defaults={"heartbeat_at": timezone.now()})
        polling.poll_host(host.pk)
        rules.evaluate()
        self.assertEqual(keys(rules.HOST_NEEDS_LOOK), [])  # following: fine
        AgentState.objects.update(heartbeat_at=timezone.now() - timedelta(minutes=10))
        self.assertEqual(polling.poll_host(host.pk), STALE)
        rules.evaluate()
        self.assertEqual(keys(rules.HOST_NEEDS_LOOK), ["web1:stale"])

    def test_it_fires_on_a_log_that_stopped_moving_and_not_on_a_quiet_hour(self):
        write_log(brute_force(local_now() - timedelta(hours=30), 100, "203.0.113.9", "root"))
        write_log(brute_force(local_now() - timedelta(hours=1), 101, "203.0.113.9", "root"))
        AgentState.objects.update_or_create(pk=1, defaults={"heartbeat_at": timezone.now()})
        host = Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)
        polling.poll_host(host.pk)
        rules.evaluate()
        self.assertEqual(keys(rules.HOST_NEEDS_LOOK), [])  # last event an hour ago: S = 24 h
        rule = Rule.objects.get(kind=rules.HOST_NEEDS_LOOK)
        rule.params = {"silent_hours": 0}
        rule.save()
        rules.evaluate()
        [alert] = Alert.objects.filter(rule__kind=rules.HOST_NEEDS_LOOK)
        self.assertEqual((alert.key, alert.severity), ("web1:silent", INFO))


class FormatDriftTests(TestCase):
    def setUp(self):
        self.host = make_host("web1", last_poll_at=timezone.now(), unknown_last_24h=0)
        hour = int(timezone.now().timestamp()) // 3600
        # A week of the usual: 2 to 6 unknown messages a day, and one burst of 400 on one afternoon.
        samples = {str(hour - h): 2 + h % 5 for h in range(1, 168)}
        samples.update({str(hour - h): 400 for h in range(30, 36)})
        HostBaseline.objects.create(host=self.host, unknown_hours=samples)

    def test_it_fires_when_unknown_messages_jump_well_above_the_usual_level(self):
        Host.objects.filter(pk=self.host.pk).update(unknown_last_24h=60)
        rules.evaluate()
        [alert] = Alert.objects.filter(rule__kind=rules.HOST_NEEDS_LOOK)
        self.assertEqual(alert.key, "web1:format-drift")
        self.assertIn("60 sshd messages Alpha does not know", alert.summary)

    def test_it_does_not_fire_below_the_factor(self):
        # Median 4: 19 is below 5 times that (and below the minimum of 20).
        Host.objects.filter(pk=self.host.pk).update(unknown_last_24h=19)
        rules.evaluate()
        self.assertEqual(keys(rules.HOST_NEEDS_LOOK), [])
        # The sample is kept for the baseline of later rounds.
        self.assertEqual(len(HostBaseline.objects.get().unknown_hours), 168)

    def test_it_needs_a_day_of_samples_first(self):
        self.assertFalse(rules.unknown_jumped(1000, [0] * 23, 20, 5))
        self.assertTrue(rules.unknown_jumped(1000, [0] * 24, 20, 5))
        self.assertFalse(rules.unknown_jumped(19, [0] * 24, 20, 5))


class RuleRowTests(TestCase):
    def test_it_has_every_rule_enabled_with_its_defaults(self):
        rows = {r.kind: r for r in Rule.objects.all()}
        self.assertEqual(
            set(rows), {rules.LOGIN_AFTER_FAILURES, rules.NEW_LOGIN, rules.BRUTE_FORCE, rules.HOST_NEEDS_LOOK}
        )
        self.assertTrue(all(r.enabled and r.quiet_period == timedelta(hours=1) for r in rows.values()))
        self.assertEqual(rows[rules.LOGIN_AFTER_FAILURES].window, timedelta(hours=24))
        self.assertEqual(rows[rules.NEW_LOGIN].window, timedelta(days=30))
        self.assertEqual(
            (rows[rules.NEW_LOGIN].param("ipv4_prefix"), rows[rules.NEW_LOGIN].param("ipv6_prefix")), (24, 64)
        )
