from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from collector.contract import COUNT_NAMES as COUNTS
from collector.retention import prune
from dashboard import queries, views
from inventory_app.models import DOWN, DUPLICATE, NEVER_POLLED, NO_SOURCE, OK, STALE, Host, HostDay, HostLogin
from inventory_app.tests import logins
from inventory_app.tests.agents import address_sources, polled_hosts
from inventory_app.tests.stored import DAY, SEEN, make_host, store_day, store_source

SINCE = DAY - timedelta(days=6)
RANGE = {"since": SINCE.isoformat(), "until": DAY.isoformat()}
HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
STATIC = Path(__file__).resolve().parent.parent / "static" / "dashboard"

PAGES = ["/", "/hosts/web1/", "/days/2026-03-02/", "/attackers/"]
DATA = [
    "/dashboard/data/connections/",
    "/dashboard/data/outcomes/",
    "/dashboard/data/hosts/web1/outcomes/",
    "/dashboard/data/hosts/web1/users/",
    "/dashboard/data/attackers/",
]
DAY_DATA = "/dashboard/data/days/2026-03-02/hosts/"


class DashboardTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user = User.objects.create_user("carol", password="a long test password")
        cls.web1 = make_host("web1", last_success_at=timezone.now(), agent_version="1.4.0", unread_bytes=512, malformed_lines=3, unknown_last_24h=2,
                             last_event_at=SEEN)  # fmt: skip
        cls.web2 = make_host("web2", DOWN, last_error=f"Cannot connect: {HOSTILE}", consecutive_failures=3)
        cls.web3 = make_host("web3", NEVER_POLLED)
        users = [{"user": HOSTILE, "sessions": 9, "failed_attempts": 20, "accepted": 0},
                 {"user": "root", "sessions": 4, "failed_attempts": 8, "accepted": 1}]  # fmt: skip
        for i in range(7):
            store_day(cls.web1, SINCE + timedelta(days=i), 10 * i, users)
            store_day(cls.web2, SINCE + timedelta(days=i), 100 + i)
        store_day(cls.web1, SINCE - timedelta(days=1), 5000)  # outside the range
        store_day(cls.web1, timezone.localdate(), 7000)  # today (after DAY): the host table's counts
        # Failed on two hosts, never logged in: not flagged.
        store_source(cls.web1, "203.0.113.1", 30, 90, 0, users=[HOSTILE, "admin"])
        store_source(cls.web2, "203.0.113.1", 20, 60, 0, day=DAY - timedelta(days=1))
        # Failed on web2, logged in on web1: flagged, although it failed less.
        store_source(cls.web1, "198.51.100.7", 1, 0, 1)
        store_source(cls.web2, "198.51.100.7", 4, 12, 0)
        # Mistyped then logged in, on one host: flagged too (both outcomes in the fleet).
        store_source(cls.web1, "192.0.2.5", 3, 2, 1)
        # Only ever logged in: listed, not flagged.
        store_source(cls.web1, "192.0.2.8", 1, 0, 1)
        # Before the range: left out.
        store_source(cls.web1, "192.0.2.99", 50, 500, 1, day=SINCE - timedelta(days=1))

    def setUp(self):
        self.client.force_login(self.user)

    def get_json(self, url: str, **params) -> dict:
        response = self.client.get(url, params or RANGE)
        self.assertEqual(response.status_code, 200, url)
        self.assertEqual(response["Content-Type"], "application/json")
        return response.json()

    # --- Login ----------------------------------------------------------------------------------

    def test_it_sends_anonymous_visitors_to_the_login_page(self):
        self.client.logout()
        for url in [*PAGES, *DATA, DAY_DATA]:
            response = self.client.get(url)
            self.assertEqual(response.status_code, 302, url)
            self.assertEqual(response["Location"], f"/accounts/login/?next={url}")

    def test_it_logs_in_and_out_with_csrf_protected_forms(self):
        self.client.logout()
        browser = self.client_class(enforce_csrf_checks=True)
        page = browser.get("/accounts/login/?next=/attackers/")
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, 'name="csrfmiddlewaretoken"')
        self.assertContains(page, 'type="submit"')
        self.assertContains(page, 'name="username"')
        self.assertContains(page, 'name="password"')
        # Without the token the login is refused; with it, the user lands where they were going.
        credentials = {"username": "carol", "password": "a long test password", "next": "/attackers/"}
        self.assertEqual(browser.post("/accounts/login/", credentials).status_code, 403)
        token = page.context["csrf_token"]
        response = browser.post("/accounts/login/", {**credentials, "csrfmiddlewaretoken": str(token)})
        self.assertRedirects(response, "/attackers/", fetch_redirect_response=False)
        overview = browser.get("/")
        self.assertEqual(overview.status_code, 200)
        # Logging out is a POST form in the navigation, with its token; GET does nothing.
        self.assertRegex(
            overview.content.decode(),
            r'<form class="logout" method="post" action="/accounts/logout/">\s*<input type="hidden" name="csrfmiddlewaretoken"',
        )
        self.assertEqual(browser.get("/accounts/logout/").status_code, 405)
        token = overview.context["csrf_token"]
        response = browser.post("/accounts/logout/", {"csrfmiddlewaretoken": str(token)})
        self.assertRedirects(response, "/accounts/login/", fetch_redirect_response=False)
        self.assertEqual(browser.get("/").status_code, 302)

    def test_it_rejects_a_wrong_password(self):
        self.client.logout()
        response = self.client.post("/accounts/login/", {"username": "carol", "password": "wrong"})
        self.assertContains(response, "did not match", status_code=200)
        self.assertEqual(self.client.get("/").status_code, 302)

    # --- Pages ----------------------------------------------------------------------------------

    def test_it_shows_every_page_with_the_navigation_and_its_charts(self):
        today = timezone.localdate().isoformat()
        for url in PAGES:
            response = self.client.get(url, RANGE if url != PAGES[2] else {})
            self.assertEqual(response.status_code, 200, url)
            html = response.content.decode()
            self.assertIn('<main id="content">', html)
            nav = re.search(r"<nav .*?</nav>", html, re.S).group(0)
            for link in ['href="/"', 'href="/#hosts"', f'href="/days/{today}/"', 'href="/attackers/"']:
                self.assertIn(link, nav, url)
            # Not staff: no admin link.
            self.assertNotIn('href="/admin/"', nav)
            # Every chart names JSON that answers in Chart.js's shape.
            canvases = re.findall(r'<canvas class="chart" data-url="([^"]+)"', html)
            self.assertTrue(canvases, url)
            for data_url in canvases:
                data = self.get_json(data_url.replace("&amp;", "&"), x="")
                self.assertEqual(set(data), {"labels", "datasets"})
            self.assertEqual(response["Content-Security-Policy"].split(";")[0], "default-src 'self'")

    def test_it_links_staff_to_the_admin(self):
        self.user.is_staff = True
        self.user.save()
        response = self.client.get("/")
        self.assertContains(response, 'href="/admin/"')

    def test_it_loads_only_its_own_scripts_and_vendored_chartjs(self):
        for url in PAGES:
            html = self.client.get(url).content.decode()
            # No inline scripts (data goes through data- attributes and JSON), nothing off-site.
            scripts = re.findall(r"<script([^>]*)>", html)
            self.assertTrue(scripts)
            for attributes in scripts:
                self.assertRegex(attributes, r'src="/static/dashboard/')
            # No event handler attributes (quoted values, where escaped log text lives, aside).
            tags = [re.sub(r'"[^"]*"', '""', tag) for tag in re.findall(r"<[^>]+>", html)]
            self.assertEqual([tag for tag in tags if re.search(r"\son\w+\s*=", tag)], [])
            self.assertIn("/static/dashboard/vendor/chart-", html)
        vendored = sorted(p.name for p in (STATIC / "vendor").glob("chart-*"))
        self.assertEqual(len(vendored), 2)
        version = vendored[0].removeprefix("chart-").removesuffix(".LICENSE.md")
        self.assertEqual(vendored, [f"chart-{version}.LICENSE.md", f"chart-{version}.umd.min.js"])
        self.assertIn(f"Chart.js v{version}", (STATIC / "vendor" / vendored[1]).read_text()[:200])
        self.assertIn("MIT License", (STATIC / "vendor" / vendored[0]).read_text())
        for page in ("charts", "overview", "host", "day", "attackers"):
            self.assertTrue((STATIC / "js" / f"{page}.js").exists(), page)
            self.assertNotIn("innerHTML", (STATIC / "js" / f"{page}.js").read_text())

    # --- Overview -------------------------------------------------------------------------------

    def test_it_totals_the_range_as_the_sums_of_its_days(self):
        response = self.client.get("/", RANGE)
        totals = response.context["totals"]
        days = HostDay.objects.filter(day__gte=SINCE, day__lte=DAY)
        for name in ("sessions", "accepted", "failed_attempts"):
            self.assertEqual(totals[name], sum(getattr(d, name) for d in days), name)
        # Distinct over hosts and days: 203.0.113.1 (two hosts) and 198.51.100.7 count once.
        self.assertEqual(totals["distinct_sources"], 4)
        self.assertEqual(
            response.context["states"],
            {OK: 1, STALE: 0, DOWN: 1, NO_SOURCE: 0, DUPLICATE: 0, NEVER_POLLED: 1},
        )
        self.assertContains(response, f'<span class="value">{totals["sessions"]}</span>')
        # The chart of the same range adds up to the same connections.
        data = self.get_json("/dashboard/data/connections/")
        self.assertEqual(sum(sum(d["data"]) for d in data["datasets"]), totals["sessions"])

    def test_it_lists_every_host_with_todays_counts_and_a_trend(self):
        response = self.client.get("/", RANGE)
        hosts = response.context["hosts"]
        self.assertEqual([h["name"] for h in hosts], ["web1", "web2", "web3"])
        today = HostDay.objects.filter(host=self.web1, day=timezone.localdate()).first()
        self.assertEqual(hosts[0]["sessions"], today.sessions if today else 0)
        self.assertEqual(hosts[2]["sessions"], 0)
        for name in ("web1", "web2", "web3"):
            self.assertContains(
                response, f'<a href="/hosts/{name}/?since={SINCE}&amp;until={DAY}">{name}</a>'
            )
        # On the default range the links are the plain pages.
        self.assertContains(self.client.get("/"), '<a href="/hosts/web1/">web1</a>')
        # The trend covers the range: web2 grows one a day.
        self.assertEqual(hosts[1]["trend_text"], ", ".join(str(100 + i) for i in range(7)))
        self.assertContains(response, "<polyline points=", count=3)

    def test_it_defaults_to_the_last_fourteen_days(self):
        response = self.client.get("/")
        today = timezone.localdate()
        self.assertEqual((response.context["since"], response.context["until"]),
                         (today - timedelta(days=13), today))  # fmt: skip
        data = self.get_json("/dashboard/data/outcomes/", x="")
        self.assertEqual(data["labels"][0], (today - timedelta(days=13)).isoformat())
        self.assertEqual(len(data["labels"]), 14)

    def test_it_stacks_the_busiest_hosts_and_sums_the_others(self):
        # 11 more hosts: host i has i+1 connections a day, so db10..db03 are the eight busiest.
        for i in range(11):
            host = make_host(f"db{i:02}")
            for d in range(3):
                store_day(host, DAY - timedelta(days=d), (i + 1) * (d + 1))
        data = self.get_json("/dashboard/data/connections/")
        self.assertEqual(len(data["labels"]), 7)
        labels = [d["label"] for d in data["datasets"]]
        # web2 (~100 a day) and web1, then the busiest db hosts, then one bucket for the rest.
        self.assertEqual(
            labels, ["web2", "web1", "db10", "db09", "db08", "db07", "db06", "db05", "other hosts"]
        )
        self.assertEqual(data["datasets"][0]["link"], f"/hosts/web2/?since={SINCE}&until={DAY}")
        self.assertNotIn("link", data["datasets"][-1])
        others = data["datasets"][-1]["data"]
        for i, day in enumerate(data["labels"]):
            rest = HostDay.objects.filter(day=day, host__name__in=[f"db{n:02}" for n in range(5)])
            self.assertEqual(others[i], sum(d.sessions for d in rest), day)
            # Stacked, each day adds up to the fleet's connections of the day.
            fleet = sum(d.sessions for d in HostDay.objects.filter(day=day))
            self.assertEqual(sum(d["data"][i] for d in data["datasets"]), fleet, day)

    def test_it_leaves_out_the_others_when_every_host_is_named(self):
        data = self.get_json("/dashboard/data/connections/")
        self.assertEqual([d["label"] for d in data["datasets"]], ["web2", "web1"])

    def test_it_charts_accepted_versus_failed_per_day(self):
        data = self.get_json("/dashboard/data/outcomes/")
        self.assertEqual(data["labels"], [(SINCE + timedelta(days=i)).isoformat() for i in range(7)])
        self.assertEqual(
            [d["label"] for d in data["datasets"]], ["Accepted", "Failed connections", "Failed attempts"]
        )
        for dataset, field in zip(data["datasets"], ("accepted", "failed_sessions", "failed_attempts")):
            expected = [
                sum(getattr(d, field) for d in HostDay.objects.filter(day=day)) for day in data["labels"]
            ]
            self.assertEqual(dataset["data"], expected)

    def test_it_fills_days_without_data_with_zeros(self):
        data = self.get_json("/dashboard/data/outcomes/", since="2020-01-01", until="2020-01-03")
        self.assertEqual(data["labels"], ["2020-01-01", "2020-01-02", "2020-01-03"])
        self.assertEqual({tuple(d["data"]) for d in data["datasets"]}, {(0, 0, 0)})
        self.assertEqual(
            self.get_json("/dashboard/data/connections/", since="2020-01-01", until="2020-01-03")["datasets"],
            [],
        )

    # --- Host detail ----------------------------------------------------------------------------

    def test_it_shows_a_hosts_series_sources_users_and_health(self):
        response = self.client.get("/hosts/web1/", RANGE)
        self.assertEqual(response.status_code, 200)
        # Top sources over the range, busiest first (ties by address); the one before the range
        # left out.
        self.assertEqual([s["ip"] for s in response.context["sources"]],
                         ["203.0.113.1", "192.0.2.5", "192.0.2.8", "198.51.100.7"])  # fmt: skip
        # Top users are summed over the range's days (7 days of the same top list).
        self.assertEqual(
            response.context["users"][0],
            {"user": HOSTILE, "sessions": 63, "failed_attempts": 140, "accepted": 0},
        )
        self.assertContains(response, "1.4.0")
        self.assertContains(response, "<dt>Unread bytes</dt><dd>512</dd>", html=False)
        self.assertContains(response, "<dt>Malformed lines</dt><dd>3</dd>", html=False)
        self.assertContains(response, "<dt>Unknown sshd messages (24 h)</dt><dd>2</dd>", html=False)
        data = self.get_json("/dashboard/data/hosts/web1/outcomes/")
        self.assertEqual(data["datasets"][0]["label"], "Connections")
        self.assertEqual(data["datasets"][0]["data"], [10 * i for i in range(7)])
        self.assertTrue(data["datasets"][-1]["hidden"])

    def test_it_shows_one_day_of_a_host(self):
        response = self.client.get("/hosts/web1/", {**RANGE, "day": (DAY - timedelta(days=1)).isoformat()})
        self.assertEqual(response.context["sources"], [])
        self.assertEqual(response.context["users"][0]["sessions"], 9)
        data = self.get_json("/dashboard/data/hosts/web1/users/", day=DAY.isoformat())
        self.assertEqual(data["labels"], [HOSTILE, "root"])
        self.assertEqual(data["datasets"][0]["data"], [9, 4])

    def test_it_shows_a_down_hosts_last_error(self):
        response = self.client.get("/hosts/web2/")
        self.assertContains(response, f"<code>Cannot connect: {ESCAPED}</code>", html=False)
        self.assertContains(response, "down")

    def test_it_answers_404_for_an_unknown_host(self):
        for name in ["nope", "bad%20name", "x" * 120]:
            self.assertEqual(self.client.get(f"/hosts/{name}/").status_code, 404, name)
            response = self.client.get(f"/dashboard/data/hosts/{name}/outcomes/")
            self.assertEqual(response.status_code, 404, name)
            self.assertIn("error", response.json())

    # --- Day view -------------------------------------------------------------------------------

    def test_it_lists_every_host_on_the_day_view(self):
        response = self.client.get("/days/2026-03-02/")
        self.assertEqual([h["name"] for h in response.context["hosts"]], ["web1", "web2", "web3"])
        web3 = response.context["hosts"][2]
        self.assertEqual({f: web3[f] for f in COUNTS}, dict.fromkeys(COUNTS, 0))
        html = response.content.decode()
        table = re.search(r'<table class="data-table sortable" id="day-table">.*?</table>', html, re.S).group(
            0
        )
        self.assertEqual(table.count('aria-sort="'), 10)
        for name in ("web1", "web2", "web3"):
            self.assertIn(f'<a href="/hosts/{name}/?day=2026-03-02">{name}</a>', table)
        # The totals row sums the hosts.
        self.assertEqual(response.context["totals"]["sessions"], 60 + 106)

    def test_it_charts_the_days_busiest_hosts_by_outcome(self):
        day = DAY + timedelta(days=1)
        for host, (sessions, accepted, failed) in [(self.web1, (40, 5, 30)), (self.web2, (90, 0, 80))]:
            HostDay.objects.create(
                host=host, day=day, sessions=sessions, accepted=accepted, failed_sessions=failed
            )
        data = self.get_json(f"/dashboard/data/days/{day}/hosts/", x="")
        self.assertEqual(data["labels"], ["web2", "web1"])  # web3 stored nothing that day
        self.assertEqual(
            [d["label"] for d in data["datasets"]], ["Accepted", "Failed connections", "No password tried"]
        )
        self.assertEqual([d["data"] for d in data["datasets"]], [[0, 5], [80, 30], [10, 5]])
        self.assertEqual(self.client.get("/dashboard/data/days/2026-02-30/hosts/").status_code, 404)

    def test_it_goes_to_the_chosen_day(self):
        self.assertRedirects(self.client.get("/days/2026-03-02/", {"day": "2026-02-01"}), "/days/2026-02-01/")
        for bad in ["2026-02-30", "yesterday", "2026-3-2"]:
            self.assertEqual(self.client.get(f"/days/{bad}/").status_code, 404, bad)

    # --- Attackers ------------------------------------------------------------------------------

    def test_it_lists_attackers_with_the_flagged_first(self):
        response = self.client.get("/attackers/", RANGE)
        rows = response.context["rows"]
        self.assertEqual(rows[2]["users"], [HOSTILE, "admin", "root"])
        self.assertEqual([(r["ip"], r["flagged"]) for r in rows], [
            ("198.51.100.7", True), ("192.0.2.5", True), ("203.0.113.1", False), ("192.0.2.8", False),
        ])  # fmt: skip
        first = rows[2]
        self.assertEqual((first["hosts"], first["failed_attempts"], first["sessions"]), (2, 150, 50))
        self.assertEqual(first["first_seen"], SEEN)
        self.assertEqual(first["last_seen"], SEEN + timedelta(minutes=5))
        html = response.content.decode()
        self.assertEqual(re.findall(r'data-flagged="(\w+)"', html), ["true", "true", "false", "false"])

    def test_it_pages_attackers(self):
        for i in range(105):
            store_source(self.web3, f"10.0.{i // 256}.{i % 256}", 1, 1, 0)
        first = self.client.get("/attackers/", RANGE)
        self.assertEqual(len(first.context["rows"]), 100)
        self.assertContains(first, 'rel="next"')
        second = self.client.get("/attackers/", {**RANGE, "page": 2})
        self.assertEqual(len(second.context["rows"]), 109 - 100)
        self.assertNotContains(second, 'rel="next"')
        seen = [r["ip"] for r in first.context["rows"] + second.context["rows"]]
        self.assertEqual(len(set(seen)), 109)

    def test_it_counts_addresses_per_day(self):
        data = self.get_json("/dashboard/data/attackers/")
        self.assertEqual(data["labels"][-2:], [(DAY - timedelta(days=1)).isoformat(), DAY.isoformat()])
        addresses, failing, accepting = (d["data"] for d in data["datasets"])
        self.assertEqual((addresses[-1], failing[-1], accepting[-1]), (4, 3, 3))
        self.assertEqual((addresses[-2], failing[-2], accepting[-2]), (1, 1, 0))

    # --- Safety ---------------------------------------------------------------------------------

    def test_it_shows_a_hostile_user_name_as_text(self):
        pages = [("/hosts/web1/", RANGE), ("/hosts/web1/", {"day": DAY}), ("/hosts/web2/", {}), ("/", RANGE),
                 ("/attackers/", RANGE), ("/days/2026-03-02/", {})]  # fmt: skip
        for url, params in pages:
            html = self.client.get(url, params).content.decode()
            self.assertNotIn(HOSTILE, html, url)
            self.assertNotIn("<img", html, url)
        html = self.client.get("/hosts/web1/", RANGE).content.decode()
        # In the users table (cell and tooltip) and the sources' user names.
        self.assertIn(f'<th scope="row" class="user"><bdi>{ESCAPED}</bdi></th>', html)
        self.assertIn(
            f'<span class="user-name"><bdi>{ESCAPED}</bdi></span>, <span class="user-name"><bdi>admin</bdi></span>',
            html,
        )
        # Among the names an address tried, on the attackers page.
        html = self.client.get("/attackers/", RANGE).content.decode()
        self.assertIn(
            f'<span class="user-name"><bdi>{ESCAPED}</bdi></span>, <span class="user-name"><bdi>admin</bdi></span>',
            html,
        )
        # In the chart's data it is a JSON string, drawn on a canvas.
        self.assertEqual(self.get_json("/dashboard/data/hosts/web1/users/")["labels"][0], HOSTILE)

    def test_it_shows_invisible_characters_in_a_user_name(self):
        # admin\u202etxt.exe would read "adminexe.txt"; a zero-width space hides in "ro\u200bot".
        spoofs = ["admin\u202etxt.exe", "ro\u200bot"]
        HostDay.objects.filter(host=self.web1).update(
            top_users=[
                {"user": name, "sessions": 9 - i, "failed_attempts": 1, "accepted": 0}
                for i, name in enumerate(spoofs)
            ]
        )
        store_source(self.web1, "203.0.113.50", 1, 1, 0, users=spoofs)
        html = self.client.get("/hosts/web1/", RANGE).content.decode()
        for shown in ("admin[U+202E]txt.exe", "ro[U+200B]ot"):
            self.assertIn(f'<th scope="row" class="user"><bdi>{shown}</bdi></th>', html)
            self.assertIn(f'<span class="user-name"><bdi>{shown}</bdi></span>', html)
        self.assertNotIn("\u202e", html)
        self.assertNotIn("\u200b", html)
        # On the chart too, where no markup can isolate it.
        labels = self.get_json("/dashboard/data/hosts/web1/users/")["labels"]
        self.assertEqual(labels[:2], ["admin[U+202E]txt.exe", "ro[U+200B]ot"])

    def test_it_marks_a_source_that_is_a_host_name(self):
        # PAM's rhost where sshd wrote no address: a name anyone with a PTR record can choose.
        store_source(self.web1, "evil<b>.example.net", 1, 0, 0)
        html = self.client.get("/hosts/web1/", RANGE).content.decode()
        self.assertIn(
            '<code><bdi>evil&lt;b&gt;.example.net</bdi> <span class="tag" title="A host name from PAM, '
            'not an address sshd wrote">host name</span></code>',
            html,
        )
        self.assertIn("<code><bdi>203.0.113.1</bdi></code>", html)

    def test_it_answers_bad_ranges_with_a_message(self):
        for params in [{"since": "2026-13-01"}, {"since": "2026-03-05", "until": "2026-03-01"},
                       {"since": "2020-01-01", "until": "2026-01-01"}, {"until": "0001-01-02"}]:  # fmt: skip
            for url in DATA:
                response = self.client.get(url, params)
                self.assertEqual(response.status_code, 400, (url, params))
                self.assertTrue(response.json()["error"])
            for url in ["/", "/hosts/web1/", "/attackers/"]:
                response = self.client.get(url, params)
                self.assertContains(response, 'role="alert"', status_code=400)
        response = self.client.get("/hosts/web1/", {"day": "soon"})
        self.assertContains(response, "day: Enter a valid date.", status_code=400)

    # --- Queries --------------------------------------------------------------------------------

    def queries_of(self, url: str, params: dict) -> int:
        with CaptureQueriesContext(connection) as captured:
            self.assertEqual(self.client.get(url, params).status_code, 200, url)
        return len(captured)

    def test_it_costs_the_same_queries_for_2_and_20_hosts(self):
        self.web3.delete()
        urls = [("/", RANGE), *((url, RANGE) for url in DATA), ("/hosts/web1/", RANGE),
                ("/days/2026-03-02/", {}), (DAY_DATA, {}), ("/attackers/", RANGE)]  # fmt: skip
        with2 = [self.queries_of(url, params) for url, params in urls]
        for i in range(18):
            host = make_host(f"db{i:02}")
            for d in range(7):
                store_day(host, DAY - timedelta(days=d), i)
            store_day(host, timezone.localdate(), i)
            store_source(host, "203.0.113.1", 1, 1, 0)
            store_source(host, f"192.0.2.{200 + i}", 1, 0, 1)
        self.assertEqual(Host.objects.count(), 20)
        with20 = [self.queries_of(url, params) for url, params in urls]
        self.assertEqual(with2, with20)
        # Session and user, then: the overview's totals, the fleet's stored days, distinct
        # sources, states, the host count, a page of hosts and their trends.
        with self.assertNumQueries(9):
            self.client.get("/", RANGE)
        # Session and user, then the busiest hosts' series and the per-day totals.
        with self.assertNumQueries(4):
            self.client.get("/dashboard/data/connections/", RANGE)
        for url in DATA[1:]:
            with self.assertNumQueries(with20[urls.index((url, RANGE))]):
                self.client.get(url, RANGE)
        # The host page is the dearest: its totals, tables and latest logins.
        self.assertLessEqual(max(with20), 9)
        # Session and user, then the fleet's stored days, a page of addresses, their hosts and
        # user names, their times.
        with self.assertNumQueries(6):
            self.client.get("/attackers/", RANGE)

    def make_hosts(self, count: int) -> None:
        now = timezone.now()
        Host.objects.bulk_create(Host(name=f"bulk{i:04}.example", url=f"http://bulk{i:04}.example:8001", token="t" * 20,
                                      state=OK, last_success_at=now) for i in range(count))  # fmt: skip

    def test_it_pages_the_overviews_host_table(self):
        self.make_hosts(views.HOSTS_PER_PAGE)  # 3 + 100 hosts: two pages
        first = self.client.get("/", {**RANGE, "x": "<k>"})
        rows = re.findall(r'<tr[^>]*data-name="([^"]*)"', first.content.decode())
        self.assertEqual(len(rows), views.HOSTS_PER_PAGE)
        # The other parameters stay in the page links, escaped.
        self.assertContains(first, 'rel="next"')
        self.assertIn("page=2", first.context["next_page"])
        self.assertIn("x=%3Ck%3E", first.context["next_page"])
        second = self.client.get("/", {**RANGE, "page": 2})
        rest = re.findall(r'<tr[^>]*data-name="([^"]*)"', second.content.decode())
        self.assertEqual(len(rest), 3)
        self.assertFalse(set(rows) & set(rest))
        self.assertEqual(sorted(rows + rest), sorted(Host.objects.values_list("name", flat=True)))
        # Totals stay over the whole fleet on every page.
        self.assertEqual(first.context["totals"], second.context["totals"])

    def test_it_costs_the_overview_the_same_queries_for_3_and_300_hosts(self):
        few = self.queries_of("/", RANGE)
        self.make_hosts(297)
        self.assertEqual(self.queries_of("/", RANGE), few)
        self.assertEqual(self.queries_of("/", {**RANGE, "page": 3}), few)

    def test_it_keeps_the_overviews_html_under_150_kb_at_1000_hosts(self):
        self.make_hosts(1000)
        response = self.client.get("/", RANGE)
        self.assertLess(len(response.content), 150_000)

    def test_it_keeps_the_busiest_host_query_to_the_range(self):
        # The subquery of the busiest hosts and its series read the same days.
        result = queries.connections_by_host(SINCE, DAY)
        self.assertEqual([name for name, _ in result["hosts"]], ["web2", "web1"])
        self.assertEqual(result["others"], [0] * 7)
        self.assertEqual(settings.LOGIN_URL, "/accounts/login/")


@override_settings(ALPHA_POLL_READ_TIMEOUT=2.0, ALPHA_POLL_CONNECT_TIMEOUT=2.0)
class FleetTotalsTests(TestCase):
    """The pages' totals of distinct sources, on days polled from agents over HTTP: distinct
    addresses over every host, marked when some host's sources are not stored."""

    def setUp(self):
        self.client.force_login(User.objects.create_user("carol", password="a long test password"))
        self.today = timezone.localdate()
        self.yesterday = self.today - timedelta(days=1)
        shared = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
        polled_hosts(
            self,
            {
                "web1": {
                    self.today: address_sources(self.today, [*shared, "198.51.100.1"]),
                    self.yesterday: address_sources(self.yesterday, ["192.0.2.1", "192.0.2.9"]),
                },
                # A source sshd wrote as a name: one of web2's sources, never an address.
                "web2": {self.today: address_sources(self.today, [*shared, "gateway.example.net"])},
            },
        )

    def all_hosts_row(self, day: date) -> list[str]:
        html = self.client.get(f"/days/{day}/").content.decode()
        foot = re.search(r"<tfoot>.*?</tfoot>", html, re.S).group(0)
        return [cell.strip() for cell in re.findall(r'<td class="num"[^>]*>([^<]*)</td>', foot)]

    def test_it_shows_the_days_distinct_addresses_in_the_all_hosts_row(self):
        response = self.client.get(f"/days/{self.today}/")
        hosts = response.context["hosts"]
        self.assertEqual([h["unique_sources"] for h in hosts], [4, 4])  # each agent's count
        row = self.all_hosts_row(self.today)
        # Connections are summed; the sources are the three shared addresses once and web1's own.
        self.assertEqual(row[0], str(sum(h["sessions"] for h in hosts)))
        self.assertEqual(row[-1], "4")

    def test_it_counts_only_addresses_in_the_overviews_distinct_sources(self):
        response = self.client.get("/", {"since": self.yesterday, "until": self.today})
        # The five addresses of the two days; the name is not one.
        self.assertEqual(response.context["totals"]["distinct_sources"], 5)
        self.assertContains(
            response, '<span class="value">5</span><span class="name">distinct sources</span>'
        )

    def test_it_marks_the_distinct_sources_a_lower_bound_when_detail_was_pruned(self):
        prune(self.today, 1)  # yesterday's sources go, its counts stay
        self.assertEqual(self.all_hosts_row(self.yesterday)[-1], "≥ 0")
        self.assertEqual(self.all_hosts_row(self.today)[-1], "4")
        response = self.client.get("/", {"since": self.yesterday, "until": self.today})
        self.assertContains(
            response, '<span class="value">≥ 4</span><span class="name">distinct sources</span>'
        )
        html = self.client.get(
            "/hosts/web1/", {"since": self.yesterday, "until": self.today}
        ).content.decode()
        self.assertIn('<span class="value">≥ 4</span><span class="name">distinct sources</span>', html)


class AlertsPageTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        from django.contrib.auth.models import Permission

        from alerting.models import Alert, Channel, Delivery, Rule

        cls.viewer = User.objects.create_user("viewer", password="a long test password")
        cls.acker = User.objects.create_user("acker", password="a long test password")
        cls.acker.user_permissions.add(Permission.objects.get(codename="acknowledge_alert"))
        seen = timezone.now()
        cls.alert = Alert.objects.create(rule=Rule.objects.get(kind="brute_force"), key="203.0.113.9",
                                         summary=f"203.0.113.9 failed; user names tried: {HOSTILE}.", user=HOSTILE,
                                         address="203.0.113.9", hosts=",web1,", first_seen=seen, last_seen=seen)  # fmt: skip
        channel = Channel.objects.create(
            kind="webhook", name="hook", url="http://127.0.0.1:9/", secret="s" * 16
        )
        Delivery.objects.create(alert=cls.alert, channel=channel, attempts=2, last_error="Cannot post")

    def test_it_shows_alerts_with_attacker_text_escaped_and_delivery_state(self):
        self.client.force_login(self.viewer)
        response = self.client.get("/alerts/")
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        self.assertNotIn(HOSTILE, html)
        self.assertIn(f"<bdi>203.0.113.9 failed; user names tried: {ESCAPED}.</bdi>", html)
        self.assertIn("hook: pending (2 failed", html)
        self.assertIn('aria-current="page">Alerts</a>', html)
        # Without the permission, no button.
        self.assertNotIn("Acknowledge</button>", html)

    def test_acknowledging_needs_the_permission_and_a_post(self):
        self.client.force_login(self.viewer)
        self.assertEqual(self.client.post(f"/alerts/{self.alert.pk}/ack/").status_code, 403)
        self.client.force_login(self.acker)
        self.assertEqual(self.client.get(f"/alerts/{self.alert.pk}/ack/").status_code, 405)
        self.assertEqual(self.alert.__class__.objects.get(pk=self.alert.pk).state, "open")

    def test_it_acknowledges_from_the_page_with_csrf(self):
        from django.test import Client

        client = Client(enforce_csrf_checks=True)
        client.force_login(self.acker)
        page = client.get("/alerts/")
        self.assertIn("Acknowledge</button>", page.content.decode())
        # Without the token the POST is refused.
        self.assertEqual(client.post(f"/alerts/{self.alert.pk}/ack/").status_code, 403)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
        response = client.post(
            f"/alerts/{self.alert.pk}/ack/",
            {"csrfmiddlewaretoken": token, "next": "/alerts/?state=acknowledged"},
        )
        self.assertRedirects(response, "/alerts/?state=acknowledged", fetch_redirect_response=False)
        self.assertEqual(self.alert.__class__.objects.get(pk=self.alert.pk).state, "acknowledged")
        # Open alerts are the default view; the acknowledged one shows under its filter, with who.
        self.assertNotIn(f'id="alert-{self.alert.pk}"', client.get("/alerts/").content.decode())
        self.assertIn("acknowledged by acker", client.get("/alerts/?state=acknowledged").content.decode())

    def test_it_filters_and_refuses_bad_filters(self):
        self.client.force_login(self.viewer)
        self.assertIn(
            f'id="alert-{self.alert.pk}"',
            self.client.get("/alerts/?host=web1&rule=brute_force").content.decode(),
        )
        self.assertNotIn(
            f'id="alert-{self.alert.pk}"', self.client.get("/alerts/?host=web2").content.decode()
        )
        self.assertIn(
            f'id="alert-{self.alert.pk}"', self.client.get(f"/alerts/?alert={self.alert.pk}").content.decode()
        )
        self.assertEqual(self.client.get("/alerts/?state=nope").status_code, 400)

    def test_it_needs_a_login(self):
        self.assertEqual(self.client.get("/alerts/").status_code, 302)


class LoginsPageTests(TestCase):
    """The host page's logins and the fleet's logins page, on logins polled over HTTP from the
    project's own agents (inventory_app.tests.logins: web1 and web2, one address failing on web1
    and getting in on web2)."""

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
        cls.user = User.objects.create_user("carol", password="a long test password")
        cls.today = timezone.localdate()
        # The logins began in the last hour: today, or yesterday just after midnight.
        cls.days = {"since": cls.today - timedelta(days=1), "until": cls.today}

    def setUp(self):
        self.client.force_login(self.user)

    def rows(self, url: str, **params) -> list[tuple]:
        response = self.client.get(url, {**self.days, **params})
        self.assertEqual(response.status_code, 200, response.content.decode()[-500:])
        key = "logins" if url.startswith("/hosts/") else "rows"
        return [(r.host_name, r.user, r.ip, r.method, r.after_failures) for r in response.context[key]]

    def add_logins(self, host: Host, n: int, ip: str = "192.0.2.200") -> None:
        at = timezone.now() - timedelta(hours=2)
        HostLogin.objects.bulk_create(
            HostLogin(host=host, day=timezone.localdate(at), at=at - timedelta(seconds=i), user=f"u{i}", ip=ip,
                      port=1000 + i, method="password")
            for i in range(n)
        )  # fmt: skip

    # --- Host page ------------------------------------------------------------------------------

    def test_it_lists_a_hosts_logins_newest_first_with_their_details(self):
        response = self.client.get("/hosts/web1/", self.days)
        shown = response.context["logins"]
        self.assertEqual(
            [(r.user, r.ip) for r in shown], [("deploy", logins.OFFICE), (logins.SPOOFS[0], logins.LATE)]
        )
        self.assertFalse(response.context["more_logins"])
        html = response.content.decode()
        table = re.search(r'<section id="host-logins".*?</section>', html, re.S).group(0)
        # The key login: address and port, method, key, its end and how long it lasted.
        deploy = shown[0]
        self.assertIn(f"<code><bdi>{logins.OFFICE}</bdi></code> port {deploy.port}", table)
        self.assertIn("<td><bdi>publickey</bdi></td>", table)
        self.assertIn(f'<code class="key"><bdi>{logins.KEY}</bdi></code>', table)
        self.assertIn(f"{timezone.localtime(deploy.ended_at):%Y-%m-%d %H:%M:%S}</time> (0:05:00)", table)
        # The password login still open, without a key.
        self.assertIn("<td>—</td>", table)
        self.assertIn("<td>open</td>", table)
        # Failed there only after it logged in: not marked.
        self.assertEqual(re.findall(r'data-after-failures="(\w+)"', table), ["false", "false"])

    def test_it_shows_one_day_of_a_hosts_logins(self):
        day = HostLogin.objects.get(user="deploy").day
        # Both of web1's logins (50 and 30 minutes before the class began), or only deploy's when
        # midnight fell between them: the day's, whichever they are.
        stored = HostLogin.objects.filter(host__name="web1", day=day).values_list("user", flat=True)
        self.assertEqual(len(stored), 2 if day == HostLogin.objects.get(ip=logins.LATE).day else 1)
        shown = self.client.get("/hosts/web1/", {"day": day}).context["logins"]
        self.assertEqual(sorted(row.user for row in shown), sorted(stored))
        earlier = day - timedelta(days=2)
        response = self.client.get("/hosts/web1/", {"day": earlier})
        self.assertEqual(response.context["logins"], [])
        self.assertContains(response, "No logins stored for this day or range.")

    def test_it_shows_the_latest_logins_of_a_host_and_says_there_are_more(self):
        self.add_logins(Host.objects.get(name="web1"), 205)
        response = self.client.get("/hosts/web1/", self.days)
        self.assertEqual(len(response.context["logins"]), 200)
        self.assertTrue(response.context["more_logins"])
        # The newest first: the two polled ones, then the hand-made ones from two hours ago.
        self.assertEqual(response.context["logins"][0].user, "deploy")
        self.assertContains(response, "Only the latest 200 are shown:")
        self.assertContains(
            response, f'href="/logins/?since={self.days["since"]}&amp;until={self.today}&amp;host=web1"'
        )

    # --- Logins page ----------------------------------------------------------------------------

    def test_it_lists_the_fleets_logins_newest_first_each_linked_to_its_host(self):
        rows = self.rows("/logins/")
        self.assertEqual(rows, [
            ("web2", logins.HOSTILE, logins.ATTACKER, "password", True),
            ("web2", logins.SPOOFS[1], logins.OFFICE, "publickey", False),
            ("web1", "deploy", logins.OFFICE, "publickey", False),
            ("web1", logins.SPOOFS[0], logins.LATE, "password", False),
        ])  # fmt: skip
        html = self.client.get("/logins/", self.days).content.decode()
        for login in HostLogin.objects.select_related("host"):
            self.assertIn(f'<a href="/hosts/{login.host.name}/?day={login.day}">{login.host.name}</a>', html)
        self.assertIn('aria-current="page">Logins</a>', html)
        self.assertIn("4 logins, page 1 of 1.", html)

    def test_it_marks_a_login_after_failures_elsewhere_in_the_fleet(self):
        html = self.client.get("/logins/", self.days).content.decode()
        self.assertEqual(
            re.findall(r'data-after-failures="(\w+)"', html), ["true", "false", "false", "false"]
        )
        self.assertIn('<span class="flag" title="The address failed on some host', html)
        # Decided on times: once the failures are more than 24 hours before the login, or only
        # after it, the same rows are not marked.
        login = HostLogin.objects.get(ip=logins.ATTACKER)
        HostLogin.objects.filter(pk=login.pk).update(at=login.at + timedelta(hours=25))
        self.assertEqual([r[4] for r in self.rows("/logins/")], [False] * 4)
        HostLogin.objects.filter(pk=login.pk).update(at=login.at - timedelta(hours=1))
        self.assertEqual([r[4] for r in self.rows("/logins/")], [False] * 4)

    def test_it_defaults_to_today(self):
        response = self.client.get("/logins/")
        self.assertEqual((response.context["since"], response.context["until"]), (self.today, self.today))
        self.assertTrue(all(row.day == self.today for row in response.context["rows"]))

    def test_it_filters_by_user_address_host_and_method(self):
        self.assertEqual([r[1] for r in self.rows("/logins/", user="deploy")], ["deploy"])
        self.assertEqual([r[1] for r in self.rows("/logins/", user=logins.HOSTILE)], [logins.HOSTILE])
        self.assertEqual([r[0] for r in self.rows("/logins/", ip=logins.OFFICE)], ["web2", "web1"])
        self.assertEqual({r[0] for r in self.rows("/logins/", host="web1")}, {"web1"})
        self.assertEqual(
            [r[2] for r in self.rows("/logins/", method="password", host="web2")], [logins.ATTACKER]
        )
        # Together, and empty fields as no filter (what the form sends).
        self.assertEqual(len(self.rows("/logins/", user="", ip="", host="", method="")), 4)
        self.assertEqual(self.rows("/logins/", user="deploy", host="web2"), [])
        self.assertEqual(self.rows("/logins/", host="nosuchhost"), [])
        # Out of the range: none.
        self.assertEqual(self.rows("/logins/", since="2020-01-01", until="2020-01-02"), [])

    def test_it_answers_bad_filters_with_a_message_and_no_rows(self):
        for params, message in [
            ({"since": "2026-13-01"}, "since: Enter a valid date."),
            ({"since": "2026-03-05", "until": "2026-03-01"}, "since"),
            ({"since": "2020-01-01", "until": "2026-01-01"}, "at most 400 days"),
            ({"host": "bad name"}, "host:"),
            ({"host": "web1\x00"}, "host:"),
            ({"user": "root\x00"}, "user: Null characters are not allowed."),
            ({"user": "x" * 200}, "user: Ensure this value has at most 128 characters"),
            ({"ip": "1" * 300}, "ip:"),
            ({"method": "<script>"}, "method: Not an sshd method"),
            ({"page": "0"}, "page:"),
            ({"page": "two"}, "page:"),
        ]:
            response = self.client.get("/logins/", params)
            self.assertContains(response, 'role="alert"', status_code=400)
            self.assertContains(response, message, status_code=400)
            self.assertEqual(response.context["rows"], [], params)
        # A page past the last is the last page.
        self.assertEqual(len(self.rows("/logins/", page="99")), 4)

    def test_it_pages_the_logins(self):
        self.add_logins(Host.objects.get(name="web2"), 146)
        first = self.client.get("/logins/", self.days)
        self.assertEqual(len(first.context["rows"]), 100)
        self.assertContains(first, "150 logins, page 1 of 2.")
        self.assertContains(first, 'rel="next"')
        second = self.client.get("/logins/", {**self.days, "page": 2})
        self.assertEqual(len(second.context["rows"]), 50)
        self.assertNotContains(second, 'rel="next"')
        self.assertContains(second, 'rel="prev"')
        seen = [r.pk for r in first.context["rows"] + second.context["rows"]]
        self.assertEqual(len(set(seen)), 150)
        # The filters stay on the page links.
        self.assertContains(
            self.client.get("/logins/", {**self.days, "method": "password"}), "method=password&amp;page=2"
        )

    # --- Safety ---------------------------------------------------------------------------------

    def test_it_shows_hostile_and_invisible_user_names_as_text(self):
        for url in ("/logins/", "/hosts/web1/", "/hosts/web2/"):
            html = self.client.get(url, self.days).content.decode()
            self.assertNotIn("<img", html, url)
            self.assertNotIn("\u202e", html, url)
            self.assertNotIn("\u200b", html, url)
        html = self.client.get("/logins/", self.days).content.decode()
        self.assertIn(f'<span class="user-name"><bdi>{logins.ESCAPED}</bdi></span>', html)
        self.assertIn('<span class="user-name"><bdi>admin[U+202E]txt.exe</bdi></span>', html)
        self.assertIn('<span class="user-name"><bdi>ro[U+200B]ot</bdi></span>', html)
        # The filter form gives a typed hostile name back escaped too.
        html = self.client.get("/logins/", {**self.days, "user": logins.HOSTILE}).content.decode()
        self.assertNotIn("<img", html)
        self.assertIn(f'value="{logins.ESCAPED}"', html)

    # --- Queries --------------------------------------------------------------------------------

    def test_it_costs_the_same_queries_whatever_the_number_of_logins_and_hosts(self):
        urls = [("/logins/", self.days), ("/logins/", {**self.days, "host": "web1", "user": "deploy"}),
                ("/hosts/web1/", self.days)]  # fmt: skip
        before = [self.queries_of(url, params) for url, params in urls]
        for i in range(20):
            host = make_host(f"db{i:02}")
            self.add_logins(host, 30, ip=f"192.0.2.{100 + i}")
            store_source(host, f"192.0.2.{100 + i}", 3, 3, 1, day=self.today)
        self.add_logins(Host.objects.get(name="web1"), 250)
        self.assertEqual([self.queries_of(url, params) for url, params in urls], before)
        # Session and user, then the count, the page and the failures of its addresses.
        with self.assertNumQueries(5):
            self.client.get("/logins/", self.days)

    def queries_of(self, url: str, params: dict) -> int:
        with CaptureQueriesContext(connection) as captured:
            self.assertEqual(self.client.get(url, params).status_code, 200, url)
        return len(captured)
