from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pytest
import schemathesis
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import LiveServerTestCase, TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.specs.openapi.checks import positive_data_acceptance

from alphaproject.wsgi import application
from collector.contract import COUNT_NAMES as COUNTS
from collector.models import DailyCount
from collector.retention import prune
from collector.tests.helpers import write_log
from collector.tests.logs import today_lines
from inventory_app import polling
from inventory_app.models import DOWN, NEVER_POLLED, OK, Host, HostDay, HostLogin

from . import logins
from .agents import TOKEN, Answer, ScriptedAgent, SilentAgent, address_sources, polled_hosts
from .stored import DAY, store_day, store_source


def refresher(name: str) -> User:
    user = User.objects.create_user(name, password="pw")
    user.user_permissions.add(Permission.objects.get(codename="refresh_day"))
    return user


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


class CentralApiTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user = User.objects.create_user("carol", password="pw")
        cls.web1 = Host.objects.create(name="web1", url="http://web1.example:8001", token=TOKEN, state=OK,
                                       last_success_at=timezone.now())  # fmt: skip
        cls.web2 = Host.objects.create(name="web2", url="http://web2.example:8001", token=TOKEN, state=DOWN,
                                       last_error="Cannot connect to http://web2.example:8001: refused.")  # fmt: skip
        cls.web3 = Host.objects.create(name="web3", url="http://web3.example:8001", token=TOKEN)
        today = timezone.localdate()
        store_day(cls.web1, DAY, 10)
        store_day(cls.web2, DAY, 100)
        store_day(cls.web1, today, 1000)
        store_day(cls.web2, DAY - timedelta(days=1), 7)
        # Failing on two hosts: shared, not flagged.
        store_source(cls.web1, "203.0.113.1", 30, 90, 0)
        store_source(cls.web2, "203.0.113.1", 20, 60, 0)
        # Logged in on web1, failed on web2: flagged.
        store_source(cls.web1, "198.51.100.7", 1, 0, 1)
        store_source(cls.web2, "198.51.100.7", 4, 12, 0)
        # Failed then logged in, on web1 only: flagged too (the same meaning as the attackers page).
        store_source(cls.web1, "192.0.2.5", 3, 2, 1)
        # Both outcomes on each of two hosts: flagged (a login on one, failures on the other).
        store_source(cls.web1, "192.0.2.6", 2, 3, 1)
        store_source(cls.web2, "192.0.2.6", 2, 1, 1)
        # Logged in on two hosts, never failed: not flagged.
        store_source(cls.web1, "192.0.2.8", 1, 0, 1)
        store_source(cls.web3, "192.0.2.8", 1, 0, 1)

    def setUp(self):
        self.client = token_client(self.user)

    # --- Hosts ----------------------------------------------------------------------------------

    def test_it_lists_every_host_with_todays_counts(self):
        response = self.client.get("/api/v1/hosts/")
        self.assertEqual(response.status_code, 200)
        data = response.json()
        self.assertEqual(set(data), {"count", "next", "previous", "results"})
        self.assertEqual([h["name"] for h in data["results"]], ["web1", "web2", "web3"])
        web1, web2, web3 = data["results"]
        self.assertEqual(set(web1), {"name", "state", "last_success", "last_error", "today"})
        self.assertEqual((web1["state"], web2["state"], web3["state"]), (OK, DOWN, NEVER_POLLED))
        self.assertIsNotNone(web1["last_success"])
        self.assertIsNone(web2["last_success"])
        self.assertIn("refused", web2["last_error"])
        # Today's stored row, not another day's; zeros without one.
        stored = HostDay.objects.get(host=self.web1, day=timezone.localdate())
        self.assertEqual(web1["today"]["date"], timezone.localdate().isoformat())
        self.assertEqual({f: web1["today"][f] for f in COUNTS}, {f: getattr(stored, f) for f in COUNTS})
        self.assertIsNotNone(web1["today"]["polled_at"])
        self.assertEqual({f: web2["today"][f] for f in COUNTS}, dict.fromkeys(COUNTS, 0))
        self.assertIsNone(web2["today"]["polled_at"])

    def test_it_pages_a_long_host_list(self):
        data = self.client.get("/api/v1/hosts/", {"page_size": 2}).json()
        self.assertEqual(data["count"], 3)
        self.assertEqual([h["name"] for h in data["results"]], ["web1", "web2"])
        self.assertIsNone(data["previous"])
        last = self.client.get(data["next"]).json()
        self.assertEqual([h["name"] for h in last["results"]], ["web3"])
        self.assertIsNone(last["next"])

    # --- One host's day -------------------------------------------------------------------------

    def test_it_returns_a_stored_host_day_in_the_agents_shape(self):
        response = self.client.get("/api/v1/hosts/web1/logins/2026-03-02/")
        self.assertEqual(response.status_code, 200)
        data = response.json()
        # The agent's day object, then polled_at and stale.
        self.assertEqual(list(data)[:2], ["host", "date"])
        self.assertEqual(
            set(data), {"host", "date", *COUNTS, "top_sources", "top_users", "polled_at", "stale"}
        )
        stored = HostDay.objects.get(host=self.web1, day=DAY)
        self.assertEqual((data["host"], data["date"]), ("web1", "2026-03-02"))
        self.assertEqual({f: data[f] for f in COUNTS}, {f: getattr(stored, f) for f in COUNTS})
        self.assertFalse(data["stale"])
        self.assertEqual(
            [s["ip"] for s in data["top_sources"]],
            ["203.0.113.1", "192.0.2.5", "192.0.2.6", "192.0.2.8", "198.51.100.7"],
        )
        self.assertEqual(
            data["top_sources"][0],
            {"ip": "203.0.113.1", "sessions": 30, "failed_attempts": 90, "accepted": 0},
        )

    def test_it_keeps_the_ten_busiest_sources(self):
        for i in range(12):
            store_source(self.web3, f"192.0.2.{100 + i}", i, 0, 0)
        data = self.client.get("/api/v1/hosts/web3/logins/2026-03-02/").json()
        self.assertEqual([s["sessions"] for s in data["top_sources"]], list(range(11, 1, -1)))

    def test_it_marks_a_day_polled_long_ago_stale(self):
        with self.settings(ALPHA_POLL_INTERVAL=60):
            HostDay.objects.filter(host=self.web1, day=DAY).update(
                polled_at=timezone.now() - timedelta(seconds=181)
            )
            self.assertTrue(self.client.get("/api/v1/hosts/web1/logins/2026-03-02/").json()["stale"])
            HostDay.objects.filter(host=self.web1, day=DAY).update(
                polled_at=timezone.now() - timedelta(seconds=170)
            )
            self.assertFalse(self.client.get("/api/v1/hosts/web1/logins/2026-03-02/").json()["stale"])
            # A day polled complete (up to polled_through) never goes stale.
            HostDay.objects.filter(host=self.web1, day=DAY).update(
                polled_at=timezone.now() - timedelta(days=9)
            )
            Host.objects.filter(pk=self.web1.pk).update(polled_through=DAY)
            self.assertFalse(self.client.get("/api/v1/hosts/web1/logins/2026-03-02/").json()["stale"])

    def test_it_answers_zeros_for_a_day_with_nothing_stored(self):
        # web1 was polled just now: its agent reported nothing that day.
        data = self.client.get("/api/v1/hosts/web1/logins/2020-01-01/").json()
        self.assertEqual({f: data[f] for f in COUNTS}, dict.fromkeys(COUNTS, 0))
        self.assertEqual((data["polled_at"], data["top_sources"], data["stale"]), (None, [], False))
        # web2 never answered: nothing is known.
        self.assertTrue(self.client.get("/api/v1/hosts/web2/logins/2020-01-01/").json()["stale"])

    # --- The fleet's day ------------------------------------------------------------------------

    def test_it_returns_the_fleets_day_with_totals_equal_to_the_sums(self):
        response = self.client.get("/api/v1/fleet/logins/2026-03-02/")
        self.assertEqual(response.status_code, 200)
        data = response.json()
        self.assertEqual(set(data), {"date", "hosts", "totals"})
        self.assertEqual(data["date"], "2026-03-02")
        self.assertEqual([h["name"] for h in data["hosts"]], ["web1", "web2", "web3"])
        web1, web2, web3 = data["hosts"]
        self.assertEqual(set(web1), {"name", "state", "polled_at", *COUNTS, "refresh_error"})
        self.assertEqual((web1["state"], web2["state"]), (OK, DOWN))
        self.assertEqual(web1["sessions"], 10)
        self.assertEqual(web2["sessions"], 100)
        self.assertEqual((web3["sessions"], web3["polled_at"]), (0, None))
        self.assertIsNone(web1["refresh_error"])
        # Totals: the connections, attempts and logins are the sums of the rows shown, and of
        # what is stored.
        self.assertEqual(set(data["totals"]), {*COUNTS, "unique_sources_lower_bound"})
        for f in COUNTS[:-1]:
            self.assertEqual(data["totals"][f], sum(h[f] for h in data["hosts"]), f)
            self.assertEqual(
                data["totals"][f], sum(HostDay.objects.filter(day=DAY).values_list(f, flat=True))
            )
        # The sources are the distinct addresses stored (five, of nine rows); these days were
        # stored without their sources counted, so that is at least how many there were.
        self.assertEqual(data["totals"]["unique_sources"], 5)
        self.assertIs(data["totals"]["unique_sources_lower_bound"], True)

    def test_it_answers_zeros_for_a_day_no_host_stored(self):
        data = self.client.get("/api/v1/fleet/logins/2020-01-01/").json()
        self.assertEqual(len(data["hosts"]), 3)
        self.assertEqual(data["totals"], {**dict.fromkeys(COUNTS, 0), "unique_sources_lower_bound": False})

    def test_it_lists_the_fleets_totals_per_day(self):
        response = self.client.get("/api/v1/fleet/logins/", {"since": "2026-03-01", "until": "2026-03-31"})
        self.assertEqual(response.status_code, 200)
        data = response.json()
        self.assertEqual((data["since"], data["until"]), ("2026-03-01", "2026-03-31"))
        # Every day, as the agents list them: those no host stored are zeros.
        self.assertEqual([d["date"] for d in data["days"]], [f"2026-03-{n:02}" for n in range(1, 32)])
        first, second, third = data["days"][:3]
        self.assertEqual(set(second), {"date", "hosts", *COUNTS, "unique_sources_lower_bound"})
        self.assertEqual((first["hosts"], second["hosts"], third["hosts"]), (1, 2, 0))
        self.assertEqual(first["sessions"], 7)
        for f in COUNTS[:-1]:
            self.assertEqual(second[f], sum(HostDay.objects.filter(day=DAY).values_list(f, flat=True)))
        self.assertEqual((second["unique_sources"], first["unique_sources"]), (5, 0))
        self.assertEqual(third, {"date": "2026-03-03", "hosts": 0, **dict.fromkeys(COUNTS, 0),
                                 "unique_sources_lower_bound": False})  # fmt: skip

    def test_it_defaults_to_the_last_thirty_days(self):
        data = self.client.get("/api/v1/fleet/logins/").json()
        today = timezone.localdate()
        self.assertEqual(
            (data["since"], data["until"]), ((today - timedelta(days=29)).isoformat(), today.isoformat())
        )
        self.assertEqual(len(data["days"]), 30)
        self.assertEqual([d["date"] for d in data["days"] if d["hosts"]], [today.isoformat()])

    # --- Shared sources -------------------------------------------------------------------------

    def sources(self, **params) -> list[dict]:
        response = self.client.get("/api/v1/fleet/sources/2026-03-02/", params)
        self.assertEqual(response.status_code, 200)
        return response.json()["results"]

    def test_it_lists_addresses_seen_on_several_hosts_busiest_first(self):
        rows = self.sources()
        self.assertEqual([r["ip"] for r in rows], ["203.0.113.1", "198.51.100.7", "192.0.2.6", "192.0.2.8"])
        self.assertEqual(
            rows[0],
            {"ip": "203.0.113.1", "hosts": 2, "host_names": ["web1", "web2"], "sessions": 50,
             "failed_attempts": 150, "accepted": 0, "flagged": False},
        )  # fmt: skip
        self.assertEqual(rows[3]["host_names"], ["web1", "web3"])
        # min_hosts=1 adds the address seen by web1 alone; 3 leaves none.
        self.assertEqual(
            [r["ip"] for r in self.sources(min_hosts=1)],
            ["203.0.113.1", "198.51.100.7", "192.0.2.6", "192.0.2.5", "192.0.2.8"],
        )
        self.assertEqual(self.sources(min_hosts=3), [])

    def test_it_flags_an_address_that_failed_and_logged_in_as_the_dashboard_does(self):
        flagged = {r["ip"]: r["flagged"] for r in self.sources(min_hosts=1)}
        self.assertEqual(
            flagged,
            {
                "203.0.113.1": False,  # failed everywhere
                "198.51.100.7": True,  # accepted on web1, failed on web2
                "192.0.2.5": True,  # both on the same single host (198.51.100.7's case in the issue)
                "192.0.2.6": True,  # both on each of two hosts
                "192.0.2.8": False,  # accepted everywhere
            },
        )
        # One meaning: the attackers page flags exactly these addresses.
        page = APIClient()
        page.force_login(self.user)
        html = page.get("/attackers/", {"since": DAY.isoformat(), "until": DAY.isoformat()}).content.decode()
        rows = re.findall(r'<tr data-flagged="(true|false)".*?<bdi>([^<]+)</bdi>', html, re.S)
        self.assertEqual({ip: state == "true" for state, ip in rows}, flagged)

    def test_it_pages_shared_sources_in_a_stable_order(self):
        day = date(2026, 3, 4)
        for i in range(25):
            for host in (self.web1, self.web2):
                store_source(host, f"198.51.100.{i}", i % 5, 1, 0, day=day)
        seen = []
        url = "/api/v1/fleet/sources/2026-03-04/?page_size=10"
        while url:
            data = self.client.get(url).json()
            self.assertEqual(set(data), {"count", "next", "previous", "results"})
            self.assertLessEqual(len(data["results"]), 10)
            seen += data["results"]
            url = data["next"]
        self.assertEqual(len({r["ip"] for r in seen}), 25)
        order = [(-r["sessions"], r["ip"]) for r in seen]
        self.assertEqual(order, sorted(order))

    # --- Queries --------------------------------------------------------------------------------

    def queries(self, url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            self.assertEqual(self.client.get(url).status_code, 200)
        return len(captured)

    def test_it_costs_the_same_queries_for_2_and_20_hosts(self):
        Host.objects.filter(name="web3").delete()
        urls = ["/api/v1/hosts/", "/api/v1/fleet/logins/2026-03-02/", "/api/v1/fleet/sources/2026-03-02/"]
        with2 = [self.queries(url) for url in urls]
        for i in range(18):
            host = Host.objects.create(name=f"db{i:02}", url="http://db.example:8001", token=TOKEN)
            store_day(host, DAY, i)
            store_day(host, timezone.localdate(), i)
            store_source(host, "203.0.113.1", 1, 1, 0)
            store_source(host, f"192.0.2.{200 + i}", 1, 0, 1)
        self.assertEqual(Host.objects.count(), 20)
        with20 = [self.queries(url) for url in urls]
        self.assertEqual(with2, with20)
        # The token, then: count and page; hosts, summed totals and distinct addresses; count,
        # page and host names.
        self.assertEqual(with20, [3, 4, 4])
        with self.assertNumQueries(4):
            self.client.get("/api/v1/fleet/logins/2026-03-02/")
        # The range: the token, the days' sums and their distinct addresses, however many days.
        with self.assertNumQueries(3):
            self.client.get("/api/v1/fleet/logins/", {"since": "2026-01-01", "until": "2026-03-31"})

    # --- Auth and validation --------------------------------------------------------------------

    def test_it_answers_401_to_anonymous_callers_and_the_agent_token(self):
        urls = [
            "/api/v1/hosts/",
            "/api/v1/hosts/web1/logins/2026-03-02/",
            "/api/v1/fleet/logins/2026-03-02/",
            "/api/v1/fleet/logins/",
            "/api/v1/fleet/sources/2026-03-02/",
        ]
        for headers in [{}, {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, {"HTTP_AUTHORIZATION": "Token wrong"}]:
            for url in urls:
                with self.settings(ALPHA_AGENT_TOKEN=TOKEN):
                    response = APIClient().get(url, **headers)
                self.assertEqual(response.status_code, 401, (url, headers))
                self.assertIn("detail", response.json())
                self.assertEqual(response["WWW-Authenticate"], "Token")

    def test_it_lets_token_and_session_users_in(self):
        self.assertEqual(self.client.get("/api/v1/hosts/").status_code, 200)
        browser = APIClient()
        browser.force_login(User.objects.create_user("dave", password="pw"))  # not staff
        self.assertEqual(browser.get("/api/v1/hosts/").status_code, 200)
        self.assertEqual(
            browser.get("/api/v1/fleet/logins/2026-03-02/", HTTP_ACCEPT="text/html").status_code, 200
        )

    def test_it_rejects_bad_input_with_json(self):
        for url, params in [
            ("/api/v1/hosts/web1/logins/2026-02-30/", {}),
            ("/api/v1/hosts/web1/logins/yesterday/", {}),
            ("/api/v1/fleet/logins/2026-13-01/", {}),
            ("/api/v1/fleet/logins/2026-03-02/", {"refresh": "2"}),
            ("/api/v1/fleet/logins/2026-03-02/", {"refresh": "true"}),
            ("/api/v1/fleet/logins/", {"since": "2026-03-05", "until": "2026-03-01"}),
            ("/api/v1/fleet/logins/", {"since": "2020-01-01", "until": "2026-03-01"}),
            ("/api/v1/fleet/logins/", {"until": "03/01/2026"}),
            ("/api/v1/fleet/logins/", {"until": "0001-01-01"}),
            ("/api/v1/fleet/logins/", {"until": ""}),
            ("/api/v1/hosts/", {"page_size": "null"}),
            ("/api/v1/fleet/sources/2026-03-02/", {"page_size": "0"}),
            ("/api/v1/fleet/sources/2026-02-29/", {}),
            ("/api/v1/fleet/sources/2026-03-02/", {"min_hosts": "0"}),
            ("/api/v1/fleet/sources/2026-03-02/", {"min_hosts": "-1"}),
            ("/api/v1/fleet/sources/2026-03-02/", {"min_hosts": "two"}),
            ("/api/v1/fleet/sources/2026-03-02/", {"min_hosts": "9" * 30}),
        ]:
            response = self.client.get(url, params)
            self.assertEqual(response.status_code, 400, (url, params))
            self.assertEqual(response["Content-Type"], "application/json")
        for url in [
            "/api/v1/hosts/nosuchhost/logins/2026-03-02/",
            "/api/v1/hosts/web1%00/logins/2026-03-02/",
            "/api/v1/hosts/%20web1/logins/2026-03-02/",
            "/api/v1/hosts/?page=9",
            "/api/v1/fleet/sources/2026-03-02/?page=9",
        ]:
            response = self.client.get(url)
            self.assertEqual(response.status_code, 404, url)
            self.assertIn("detail", response.json())
        self.assertIn(
            "nosuchhost", self.client.get("/api/v1/hosts/nosuchhost/logins/2026-03-02/").json()["detail"]
        )

    def test_it_documents_every_endpoint_in_the_schema(self):
        staff = APIClient()
        staff.force_login(User.objects.create_user("admin", password="pw", is_staff=True))
        paths = staff.get("/api/v1/schema/?format=json").json()["paths"]
        for path in [
            "/api/v1/hosts/",
            "/api/v1/hosts/{name}/logins/{day}/",
            "/api/v1/fleet/logins/",
            "/api/v1/fleet/logins/{day}/",
            "/api/v1/fleet/sources/{day}/",
        ]:
            self.assertEqual(paths[path]["get"]["security"], [{"tokenAuth": []}, {"cookieAuth": []}], path)
        self.assertEqual(staff.get("/api/docs/").status_code, 200)


@override_settings(ALPHA_POLL_READ_TIMEOUT=2.0, ALPHA_POLL_CONNECT_TIMEOUT=2.0)
class FleetDistinctSourcesTests(TestCase):
    """The fleet's unique_sources are distinct addresses over every host (a host's row stays its
    agent's count), on days polled from agents over HTTP."""

    def setUp(self):
        self.today = timezone.localdate()
        self.yesterday = self.today - timedelta(days=1)
        shared = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
        polled_hosts(
            self,
            {
                "web1": {
                    self.today: address_sources(self.today, [*shared, "198.51.100.1"]),
                    self.yesterday: address_sources(self.yesterday, ["192.0.2.1"]),
                },
                # A source sshd wrote as a name is one of web2's sources, not an address.
                "web2": {
                    self.today: address_sources(self.today, [*shared, "gateway.example.net"]),
                    self.yesterday: address_sources(self.yesterday, ["192.0.2.1", "192.0.2.9"]),
                },
            },
        )
        self.client = token_client(User.objects.create_user("carol", password="pw"))

    def fleet_day(self, day: date) -> dict:
        response = self.client.get(f"/api/v1/fleet/logins/{day}/")
        self.assertEqual(response.status_code, 200)
        return response.json()

    def test_it_counts_each_address_once_however_many_hosts_saw_it(self):
        data = self.fleet_day(self.today)
        # Each host's row is its agent's count: four sources each.
        self.assertEqual([h["unique_sources"] for h in data["hosts"]], [4, 4])
        # The fleet's: the three shared addresses once and web1's own (not 8, the sum).
        self.assertEqual(data["totals"]["unique_sources"], 4)
        self.assertIs(data["totals"]["unique_sources_lower_bound"], False)
        # The counts of connections are sums over the hosts.
        for name in COUNTS[:-1]:
            self.assertEqual(data["totals"][name], sum(h[name] for h in data["hosts"]), name)

    def test_it_counts_distinct_addresses_per_day_over_a_range(self):
        data = self.client.get("/api/v1/fleet/logins/", {"since": self.yesterday, "until": self.today}).json()
        self.assertEqual(
            [
                (d["date"], d["hosts"], d["unique_sources"], d["unique_sources_lower_bound"])
                for d in data["days"]
            ],
            [(self.yesterday.isoformat(), 2, 2, False), (self.today.isoformat(), 2, 4, False)],
        )

    def test_it_marks_the_count_a_lower_bound_when_a_hosts_sources_are_not_stored(self):
        # web3's agent pruned yesterday's source detail (its retention): it still says how many.
        def pruned(path, answer):
            if path.startswith(f"/api/v1/sources/{self.yesterday}/"):
                return Answer.json({"next": None, "previous": None, "results": []})
            return answer

        days = {self.yesterday: address_sources(self.yesterday, ["203.0.113.5", "203.0.113.6"])}
        agent = ScriptedAgent(self, days, hostile=pruned)
        host = Host.objects.create(name="web3", url=agent.url, token=TOKEN)
        self.assertEqual(polling.poll_host(host.pk), OK)
        data = self.fleet_day(self.yesterday)
        self.assertEqual(data["hosts"][2]["unique_sources"], 2)
        # The addresses stored, at least: web3's two are not known.
        self.assertEqual(data["totals"]["unique_sources"], 2)
        self.assertIs(data["totals"]["unique_sources_lower_bound"], True)
        self.assertIs(self.fleet_day(self.today)["totals"]["unique_sources_lower_bound"], False)
        # The central server's own retention prunes yesterday's detail of every host: the same.
        prune(self.today, 1)
        data = self.fleet_day(self.yesterday)
        self.assertEqual(
            (data["totals"]["unique_sources"], data["totals"]["unique_sources_lower_bound"]), (0, True)
        )
        self.assertEqual(data["totals"]["sessions"], sum(h["sessions"] for h in data["hosts"]))
        self.assertEqual(self.fleet_day(self.today)["totals"]["unique_sources"], 4)


@override_settings(
    ALPHA_AGENT_TOKEN=TOKEN,
    ALPHA_POLL_READ_TIMEOUT=1.0,
    ALPHA_POLL_CONNECT_TIMEOUT=1.0,
    ALPHA_POLL_HEALTH_TIMEOUT=1.0,
)
class FleetRefreshTests(LiveServerTestCase):
    """?refresh=1 against the project's own agent API, served live with real data."""

    def test_it_fetches_the_day_live_from_every_host_before_answering(self):
        write_log(today_lines(70, "198.51.100.5"))
        live = Host.objects.create(name="live", url=self.live_server_url, token=TOKEN)
        silent = SilentAgent()
        self.addCleanup(silent.close)
        Host.objects.create(name="hung", url=silent.url, token=TOKEN)
        client = token_client(refresher("erin"))
        url = f"/api/v1/fleet/logins/{timezone.localdate().isoformat()}/"

        self.assertEqual(client.get(url).json()["totals"]["sessions"], 0)  # nothing stored yet
        started = time.monotonic()
        response = client.get(url, {"refresh": "1"})
        # Concurrent and bounded by the timeouts: the hung host costs about one second.
        self.assertLess(time.monotonic() - started, 3)
        self.assertEqual(response.status_code, 200)
        hung, fetched = response.json()["hosts"]
        agent_day = DailyCount.objects.get(day=timezone.localdate())
        self.assertGreater(agent_day.sessions, 0)
        self.assertEqual((fetched["name"], fetched["sessions"]), ("live", agent_day.sessions))
        self.assertEqual(fetched["accepted"], agent_day.accepted)
        self.assertIsNotNone(fetched["polled_at"])
        self.assertIsNone(fetched["refresh_error"])
        self.assertIn("did not answer in time", hung["refresh_error"])
        self.assertEqual(response.json()["totals"]["sessions"], agent_day.sessions)
        self.assertTrue(HostDay.objects.filter(host=live, day=timezone.localdate()).exists())

    def test_it_needs_a_permission_of_its_own_and_a_recent_day(self):
        Host.objects.create(name="live", url=self.live_server_url, token=TOKEN)
        today = timezone.localdate()
        reader = token_client(User.objects.create_user("reader", password="pw"))
        # Reading the fleet is one thing; making the server talk to every agent is another.
        response = reader.get(f"/api/v1/fleet/logins/{today}/", {"refresh": "1"})
        self.assertEqual(response.status_code, 403)
        self.assertIn("Can fetch a day live from every agent", response.json()["detail"])
        client = token_client(refresher("erin"))
        for day in (today - timedelta(days=30), today + timedelta(days=2), date(2, 2, 7)):
            response = client.get(f"/api/v1/fleet/logins/{day}/", {"refresh": "1"})
            self.assertEqual(response.status_code, 400, day)
            self.assertIn("Only days from", response.json()["refresh"])
        self.assertFalse(HostDay.objects.exists())  # no rows for arbitrary dates

    def test_it_records_an_unreadable_ca_bundle_as_the_hosts_error(self):
        broken = Host.objects.create(
            name="tls", url="https://127.0.0.1:9", token=TOKEN, ca_bundle="/nonexistent/ca.pem"
        )
        response = token_client(refresher("erin")).get(
            f"/api/v1/fleet/logins/{timezone.localdate()}/", {"refresh": "1"}
        )
        self.assertEqual(response.status_code, 200)
        (row,) = response.json()["hosts"]
        self.assertIn("Cannot set up TLS for https://127.0.0.1:9", row["refresh_error"])
        broken.refresh_from_db()
        self.assertEqual((broken.state, broken.last_error), (DOWN, row["refresh_error"]))


@pytest.fixture
def central_schema(db, settings, wsgi_in_test_transaction):
    settings.ALPHA_AGENT_TOKEN = TOKEN  # the schema is served to the agent token (and staff)
    user = User.objects.create_user("fuzz")
    # Disabled hosts: ?refresh=1 has nothing to fetch, the stored rows still answer.
    web1 = Host.objects.create(name="web1", url="http://web1.example:8001", token=TOKEN, enabled=False)
    web2 = Host.objects.create(name="web2", url="http://web2.example:8001", token=TOKEN, enabled=False)
    for host in (web1, web2):
        store_day(host, DAY, 3)
        store_source(host, "198.51.100.1", 5, 9, int(host is web1))
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema/?format=json", application, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return schema, headers


def test_it_answers_every_generated_central_request_within_the_schema(central_schema):
    api_schema, headers = central_schema
    operations = [
        r.ok()
        for r in api_schema.get_all_operations()
        if "/fleet/" in r.ok().path or "/hosts/" in r.ok().path
    ]
    assert len(operations) == 6
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            # Range limits span two fields, which OpenAPI cannot say: a documented 400 is fine.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()


class FleetLoginsApiTests(TestCase):
    """GET /api/v1/fleet/logins/accepted/ on logins polled over HTTP from the project's own agents
    (inventory_app.tests.logins), with the dashboard's logins page's filters."""

    URL = "/api/v1/fleet/logins/accepted/"

    @classmethod
    def setUpClass(cls):
        # The agents run before the class's transaction opens, and are polled inside it.
        cls.agents = logins.start_agents()
        for agent in cls.agents:
            cls.addClassCleanup(agent.stop)
        super().setUpClass()

    @classmethod
    def setUpTestData(cls):
        logins.poll(cls.agents)
        cls.user = User.objects.create_user("carol", password="pw")
        today = timezone.localdate()
        # The logins began in the last hour: today, or yesterday just after midnight.
        cls.days = {"since": (today - timedelta(days=1)).isoformat(), "until": today.isoformat()}

    def setUp(self):
        self.client = token_client(self.user)

    def results(self, **params) -> list[dict]:
        response = self.client.get(self.URL, {**self.days, **params})
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()["results"]

    def test_it_lists_every_login_newest_first_with_its_host_and_whether_it_came_after_failures(self):
        response = self.client.get(self.URL, self.days)
        data = response.json()
        self.assertEqual(data["count"], 4)
        first = data["results"][0]
        self.assertEqual(list(first), ["host", "at", "user", "ip", "port", "method", "key", "ended_at",
                                       "after_failures"])  # fmt: skip
        # Attacker text is a JSON string, as the agent sent it.
        self.assertEqual(
            {k: first[k] for k in ("host", "user", "ip", "method", "key", "ended_at", "after_failures")},
            {"host": "web2", "user": logins.HOSTILE, "ip": logins.ATTACKER, "method": "password", "key": "",
             "ended_at": None, "after_failures": True},
        )  # fmt: skip
        self.assertEqual(
            [(r["host"], r["user"], r["after_failures"]) for r in data["results"][1:]],
            [("web2", logins.SPOOFS[1], False), ("web1", "deploy", False), ("web1", logins.SPOOFS[0], False)],
        )
        deploy = data["results"][2]
        self.assertEqual(deploy["key"], logins.KEY)
        self.assertIsNotNone(deploy["ended_at"])

    def test_it_filters_as_the_logins_page_does(self):
        self.assertEqual([r["user"] for r in self.results(user="deploy")], ["deploy"])
        self.assertEqual([r["host"] for r in self.results(ip=logins.OFFICE)], ["web2", "web1"])
        self.assertEqual({r["host"] for r in self.results(host="web1")}, {"web1"})
        self.assertEqual([r["ip"] for r in self.results(method="password", host="web2")], [logins.ATTACKER])
        self.assertEqual(len(self.results(user="", ip="", host="", method="")), 4)
        self.assertEqual(self.results(since="2020-01-01", until="2020-01-02"), [])
        # The default is today (the page's default too).
        today = HostLogin.objects.filter(day=timezone.localdate()).count()
        self.assertEqual(self.client.get(self.URL).json()["count"], today)

    def test_it_rejects_bad_filters_with_json(self):
        for params in [{"since": "2026-13-01"}, {"since": "2026-03-05", "until": "2026-03-01"},
                       {"since": "2020-01-01", "until": "2026-01-01"}, {"until": ""}, {"host": "bad name"},
                       {"host": "web1\x00"}, {"user": "root\x00"}, {"user": "x" * 200}, {"ip": "1" * 300},
                       {"method": "<script>"}, {"page_size": "0"}]:  # fmt: skip
            response = self.client.get(self.URL, params)
            self.assertEqual(response.status_code, 400, params)
            self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(self.client.get(self.URL, {**self.days, "page": "9"}).status_code, 404)
        self.assertEqual(APIClient().get(self.URL).status_code, 401)

    def test_it_pages_in_a_stable_order_at_a_fixed_cost(self):
        at = timezone.now() - timedelta(hours=2)
        web1 = Host.objects.get(name="web1")
        for n in (0, 120):
            HostLogin.objects.bulk_create(
                HostLogin(host=web1, day=timezone.localdate(at), at=at, user=f"u{n + i}", ip=f"10.0.0.{i % 200}",
                          method="password")
                for i in range(n)
            )  # fmt: skip
            # Session-less token: the token and user, then the count, the page and its failures.
            with self.assertNumQueries(4):
                self.client.get(self.URL, self.days)
        seen = []
        for page in (1, 2):
            seen += [(r["user"], r["host"]) for r in self.results(page=page)]
        # Logins at the same time are ordered by id: no page skips or repeats one.
        self.assertEqual(len(set(seen)), 124)

    def test_it_is_in_the_schema(self):
        staff = APIClient()
        staff.force_login(User.objects.create_user("admin", password="pw", is_staff=True))
        operation = staff.get("/api/v1/schema/?format=json").json()["paths"][self.URL]["get"]
        self.assertEqual(operation["operationId"], "fleet_accepted_logins")
        self.assertEqual(operation["security"], [{"tokenAuth": []}, {"cookieAuth": []}])
        names = {p["name"] for p in operation["parameters"]}
        self.assertEqual(names, {"since", "until", "host", "user", "ip", "method", "page", "page_size"})
