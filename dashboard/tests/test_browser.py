"""The dashboard in a real browser: Playwright for Python driving Debian's Chromium against the
live server, with a fleet stored straight in the database.

Chromium is Debian's (/usr/bin/chromium, `apt-get install chromium`): `playwright install`
cannot download browsers here. Under CI=true a missing Chromium or Playwright fails these tests;
elsewhere they are skipped. To refresh the README's screenshots:

    ALPHA_SCREENSHOTS=docs/screenshots .venv/bin/pytest -q -p no:logging dashboard/tests/test_browser.py
"""

from __future__ import annotations

import os
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

from django.contrib.auth.models import User
from django.test import LiveServerTestCase, override_settings
from django.utils import timezone

from inventory_app.models import (
    DOWN,
    NEVER_POLLED,
    OK,
    STALE,
    FleetAddress,
    Host,
    HostDay,
    HostLogin,
    HostSource,
)

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright
except ImportError:  # checked in setUp: a skip here, a failure under CI
    sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",  # no traffic but to the live server
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Where the screenshots go when asked for (the README shows docs/screenshots/).
SCREENSHOTS = os.environ.get("ALPHA_SCREENSHOTS", "")

PASSWORD = "browser-test-password"
HOSTILE = "<img src=x onerror=alert(1)>"
# An alert's user name: markup, and a right-to-left override that would make it read "adminexe.txt".
HOSTILE_ALERT_USER = f"{HOSTILE}admin\u202etxt.exe"
OFFICE_KEY = "ED25519 SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
# Logged in on web1 and failed on bastion: what the attackers page flags.
FLAGGED_IP = "203.0.113.7"
# Failed on three hosts, logged in on none: shared, not flagged.
SHARED_IP = "198.51.100.23"
OFFICES = [f"192.0.2.{n}" for n in (10, 11, 12, 20, 21, 30)]
SCANNERS = [f"100.64.{n}.{n * 7}" for n in range(1, 9)]

# Every canvas.chart has a Chart.js chart with data, and has painted at least one pixel.
CHARTS_DRAWN = """() => {
    const canvases = [...document.querySelectorAll("canvas.chart")];
    return canvases.length > 0 && canvases.every((canvas) => {
        const chart = window.Chart && window.Chart.getChart(canvas);
        if (!chart || !chart.data.datasets.some((d) => d.data.length > 0)) return false;
        if (!canvas.width || !canvas.height) return false;
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
        return false;
    });
}"""
CHART_STATES = """() => [...document.querySelectorAll("canvas.chart")].map((canvas) => {
    const chart = window.Chart && window.Chart.getChart(canvas);
    return {
        url: canvas.dataset.url,
        chart: Boolean(chart),
        points: chart ? chart.data.datasets.map((d) => d.data.length) : null,
        size: [canvas.width, canvas.height],
    };
})"""
# The texts of one column of a table, row by row.
COLUMN = """([table, index]) => [...table.tBodies[0].rows].map((row) => row.cells[index].innerText.trim())"""


def make_fleet(today: date) -> dict[str, Host]:
    """Six hosts in every polling state; 14 days of counts (today's included) on all but the one
    never polled; a few addresses a day, one of them flagged; the hostile user name among web1's
    and bastion's top users and among the flagged address's user names."""
    now = timezone.now()
    rng = random.Random(14)  # the same fleet, and so the same screenshots, every run
    states = {
        "web1": (OK, 0, ""),
        "web2": (OK, 0, ""),
        "db1": (OK, 0, ""),
        "bastion": (STALE, 0, ""),
        "backup": (DOWN, 3, "Connection refused."),
        "new1": (NEVER_POLLED, 0, ""),
    }
    hosts = {}
    for name, (state, failures, error) in states.items():
        polled = state != NEVER_POLLED
        hosts[name] = Host.objects.create(
            name=name, url=f"https://{name}.example.com:8001", token=f"token-of-{name}-0123456789",
            tags="web" if name.startswith("web") else "infra", state=state,
            consecutive_failures=failures, last_error=error,
            last_poll_at=now - timedelta(minutes=5) if polled else None,
            last_success_at=now - timedelta(minutes=5 + 300 * failures) if polled else None,
            agent_version="1.0" if polled else "",
        )  # fmt: skip

    days = [today - timedelta(days=n) for n in range(13, -1, -1)]
    stored = {"web1": 1.0, "web2": 0.6, "db1": 0.2, "bastion": 2.5, "backup": 0.4}
    for name, scale in stored.items():
        host = hosts[name]
        # backup went down three days ago: nothing stored since.
        for day in days[:-3] if name == "backup" else days:
            failed_sessions = int(rng.randint(20, 120) * scale)
            accepted = rng.randint(2, 12)
            users = [
                {"user": "root", "sessions": failed_sessions // 2, "failed_attempts": failed_sessions * 2, "accepted": 0},
                {"user": "deploy", "sessions": accepted, "failed_attempts": 0, "accepted": accepted},
                {"user": "admin", "sessions": failed_sessions // 4, "failed_attempts": failed_sessions // 2, "accepted": 0},
            ]  # fmt: skip
            if name in ("web1", "bastion"):
                users.insert(1, {"user": HOSTILE, "sessions": 9, "failed_attempts": 17, "accepted": 0})
            HostDay.objects.create(
                host=host, day=day, sessions=failed_sessions + accepted + 3, accepted=accepted,
                failed_attempts=failed_sessions * 3, failed_sessions=failed_sessions,
                invalid_user_sessions=failed_sessions // 3, preauth_only=3,
                unique_sources=rng.randint(5, 40), top_users=users, polled_at=now,
            )  # fmt: skip
            # The same few offices log in, and the same few scanners come back, day after day.
            office, scanner = rng.choice(OFFICES), rng.choice(SCANNERS)
            add_source(host, day, office, sessions=accepted, failed=0, accepted=accepted, users=["deploy"])
            add_source(host, day, scanner, sessions=failed_sessions // 2, failed=failed_sessions, accepted=0,
                       users=["root", "admin", "oracle"])  # fmt: skip

    for day in days[-7:]:
        add_source(hosts["web1"], day, FLAGGED_IP, sessions=1, failed=0, accepted=1, users=["deploy"])
        add_source(
            hosts["bastion"], day, FLAGGED_IP, sessions=12, failed=41, accepted=0, users=[HOSTILE, "root"]
        )
        for name in ("web1", "web2", "db1"):
            add_source(
                hosts[name], day, SHARED_IP, sessions=6, failed=18, accepted=0, users=["admin", "oracle"]
            )
    add_logins_and_alert(hosts, today)
    return hosts


def add_logins_and_alert(hosts: dict[str, Host], today: date) -> None:
    """Two of today's logins on web1 (a key login from an office, and the flagged address with the
    hostile user name, after failing on bastion) and an open alert naming that user."""
    from alerting.models import Alert, Rule
    from alerting.rules import LOGIN_AFTER_FAILURES

    midnight = timezone.make_aware(datetime.combine(today, time(0)))
    HostSource.objects.filter(host=hosts["bastion"], day=today, ip=FLAGGED_IP).update(
        first_failed=midnight, last_failed=midnight + timedelta(seconds=30)
    )
    HostLogin.objects.create(host=hosts["web1"], day=today, at=midnight + timedelta(minutes=1), user="deploy",
                             ip=OFFICES[0], port=50022, method="publickey", key=OFFICE_KEY,
                             ended_at=midnight + timedelta(minutes=6))  # fmt: skip
    HostLogin.objects.create(host=hosts["web1"], day=today, at=midnight + timedelta(minutes=2), user=HOSTILE,
                             ip=FLAGGED_IP, port=50023, method="password")  # fmt: skip
    # The flush after each live-server test empties the rules migrate created.
    Rule.objects.ensure_all()
    Alert.objects.create(
        rule=Rule.objects.get(kind=LOGIN_AFTER_FAILURES), key=FLAGGED_IP, severity="critical",
        summary=f"{FLAGGED_IP} logged in as {HOSTILE_ALERT_USER} on web1 after failing on bastion.",
        user=HOSTILE_ALERT_USER, address=FLAGGED_IP, hosts=",bastion,web1,", first_seen=midnight,
        last_seen=midnight + timedelta(minutes=2),
    )  # fmt: skip


def add_source(host: Host, day: date, ip: str, sessions: int, failed: int, accepted: int, users=None) -> None:
    """A host's source of the day (replaced if there is one), followed by the fleet's row of it
    as polling follows it."""
    seen = timezone.make_aware(datetime.combine(day, time(10)))
    old = HostSource.objects.rollup_rows(host.pk, day).get(ip)
    HostSource.objects.update_or_create(
        host=host, day=day, ip=ip,
        defaults={"sessions": sessions, "failed_attempts": failed, "accepted": accepted,
                  "users": users or ["root"], "first_seen": seen, "last_seen": seen + timedelta(hours=2)},
    )  # fmt: skip
    FleetAddress.objects.change(host.pk, [(day, old, HostSource.objects.rollup_rows(host.pk, day)[ip])])


# Hashing a password the fast way: the tests log in through the form once each.
@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class DashboardBrowserTests(LiveServerTestCase):
    fleet = staticmethod(make_fleet)

    """Plain LiveServerTestCase, not StaticLiveServerTestCase: static files come from whitenoise,
    as in production (alphaproject.test lets it find them in the apps)."""

    def setUp(self):
        if sync_playwright is None or not os.access(CHROMIUM, os.X_OK):
            reason = (
                "Playwright (requirements-dev.txt) or Debian's chromium (apt-get install chromium) is missing"
            )
            if os.environ.get("CI") == "true":
                self.fail(f"{reason}; CI needs both.")
            self.skipTest(f"{reason} (CI would fail).")
        self.today = timezone.localdate()
        self.hosts = self.fleet(self.today)
        User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
        # Playwright's sync API keeps an asyncio loop running in this thread while it is started,
        # and Django refuses ORM calls under a running loop (SynchronousOnlyOperation). So the
        # browser starts after the data is stored and stops (a cleanup) before the flush.
        self.playwright = sync_playwright().start()
        self.addCleanup(self.playwright.stop)
        self.browser = self.playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        self.addCleanup(self.browser.close)
        self.problems: list[str] = []

    # --- helpers ---------------------------------------------------------------------------------

    def new_page(self, viewport=DESKTOP):
        """A page in a fresh context that records every console error, page error, dialog and
        failed response in self.problems (a dialog is the XSS firing: it is dismissed)."""
        context = self.browser.new_context(viewport=viewport, base_url=self.live_server_url)
        self.addCleanup(context.close)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("console", self.on_console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("dialog", self.on_dialog)
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        return page

    def on_console(self, message) -> None:
        url = message.location.get("url", "")
        # Chromium asks every site for /favicon.ico by itself, whatever the page says.
        if message.type == "error" and not url.endswith("/favicon.ico"):
            self.problems.append(f"console: {message.text} ({url})")

    def on_dialog(self, dialog) -> None:
        self.problems.append(f"dialog ({dialog.type}): {dialog.message}")
        dialog.dismiss()

    def log_in(self, viewport=DESKTOP):
        page = self.new_page(viewport)
        page.goto("/accounts/login/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("form:has(input[name=password]) [type=submit]")
        page.wait_for_url(self.live_server_url + "/")
        return page

    def visit(self, page, path: str) -> int:
        """Open `path`, wait until every chart (if any) has drawn, and check nothing went wrong;
        returns the number of charts."""
        response = page.goto(path)
        self.assertEqual(response.status, 200, path)
        return self.wait_for_charts(page)

    def wait_for_charts(self, page) -> int:
        path = page.url.removeprefix(self.live_server_url)
        charts = page.locator("canvas.chart").count()
        try:
            if charts:
                page.wait_for_function(CHARTS_DRAWN, timeout=10_000)
            else:
                page.wait_for_load_state("load")  # the page's own scripts have run
        except PlaywrightTimeoutError:
            self.fail(f"{path}: not every chart drew: {page.evaluate(CHART_STATES)}; {self.problems}")
        self.assertEqual(self.problems, [], path)
        return charts

    def screenshot(self, page, name: str) -> None:
        if not SCREENSHOTS:
            return
        page.wait_for_timeout(1200)  # Chart.js animates for a second by default
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)

    # --- tests -----------------------------------------------------------------------------------

    def test_it_sends_anonymous_visitors_to_the_login_page(self):
        page = self.new_page()
        for path in ("/", "/hosts/web1/", f"/days/{self.today.isoformat()}/", "/attackers/"):
            page.goto(path)
            self.assertTrue(page.url.startswith(f"{self.live_server_url}/accounts/login/"), page.url)
            self.assertEqual(page.locator("input[name=password]").count(), 1, path)
        # Logging in there leads back to the page asked for.
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("form:has(input[name=password]) [type=submit]")
        page.wait_for_url(f"{self.live_server_url}/attackers/")
        self.wait_for_charts(page)

    def test_it_draws_every_chart_of_every_page(self):
        page = self.log_in()
        pages = {
            "overview": "/",
            "host": "/hosts/web1/",
            "day": f"/days/{self.today.isoformat()}/",
            "attackers": "/attackers/",
        }
        for path in pages.values():
            self.assertGreater(self.visit(page, path), 0, f"{path} has no canvas.chart")
            # Each chart's endpoint answers the shape Chart.js takes.
            for url in page.locator("canvas.chart").evaluate_all("cs => cs.map(c => c.dataset.url)"):
                data = page.request.get(url).json()
                self.assertEqual({"labels", "datasets"} - set(data), set(), url)
            # Every page links the others, and the admin for staff.
            nav = page.locator("nav")
            for href in ("/", f"/days/{self.today.isoformat()}/", "/attackers/", "/admin/"):
                self.assertGreater(nav.locator(f'a[href="{href}"]').count(), 0, f"{path}: nav lacks {href}")
            self.assertEqual(page.locator("main#content").count(), 1, path)
        self.assertEqual(self.problems, [])

    def test_it_shows_a_hostile_user_name_as_text(self):
        page = self.log_in()
        day = self.today.isoformat()
        for path in ("/hosts/web1/", f"/hosts/web1/?day={day}", f"/hosts/bastion/?day={day}"):
            self.visit(page, path)
            # In the top users table as the text it is, and never parsed into an element.
            shown = page.locator("table.data-table").get_by_text(HOSTILE, exact=True)
            self.assertGreater(shown.count(), 0, f"{path} does not show the hostile user name")
            self.assertTrue(shown.first.is_visible(), path)
            self.assertEqual(page.locator('img[src="x"]').count(), 0, path)
            # And drawn as a label on the top users chart.
            labels = page.locator("canvas.chart").evaluate_all(
                "cs => cs.flatMap(c => Chart.getChart(c).data.labels.map(String))"
            )
            self.assertIn(HOSTILE, labels, path)
        # Among the flagged address's user names on the attackers page.
        self.visit(page, "/attackers/")
        row = page.locator("main#content tr[data-flagged]").filter(has_text=FLAGGED_IP)
        self.assertTrue(row.get_by_text(HOSTILE).first.is_visible())
        self.assertEqual(page.locator('img[src="x"]').count(), 0)
        # The other pages never turn it into markup either.
        for path in (f"/days/{day}/", "/"):
            self.visit(page, path)
            self.assertEqual(page.locator('img[src="x"]').count(), 0, path)
        self.assertEqual(self.problems, [])  # no dialog: alert(1) never ran

    def test_it_says_so_when_a_chart_has_nothing_to_draw(self):
        page = self.log_in()
        empty = (self.today - timedelta(days=30)).isoformat()  # before the fleet's 14 days
        page.goto(f"/days/{empty}/")
        note = page.locator(".chart-box .chart-empty")
        note.wait_for()
        self.assertIn("Nothing to draw", note.inner_text())
        self.assertTrue(
            page.evaluate("() => Boolean(Chart.getChart(document.querySelector('canvas.chart')))")
        )
        # A day with counts has no such note.
        self.visit(page, f"/days/{self.today.isoformat()}/")
        self.assertEqual(page.locator(".chart-empty").count(), 0)
        self.assertEqual(self.problems, [])

    def test_it_links_each_host_of_the_overview_to_its_page(self):
        page = self.log_in()
        self.visit(page, "/")
        table = page.locator("main#content table.data-table")
        for name in self.hosts:
            # The link may carry the overview's range (?since=&until=).
            link = table.locator(f'a[href^="/hosts/{name}/"]')
            self.assertGreater(link.count(), 0, f"no link to {name}")
        table.locator('a[href^="/hosts/db1/"]').first.click()
        page.wait_for_url(f"{self.live_server_url}/hosts/db1/**")
        self.wait_for_charts(page)

    def test_it_lists_flagged_attackers_first(self):
        page = self.log_in()
        self.visit(page, "/attackers/")
        rows = page.locator("main#content tr[data-flagged]")
        flags = rows.evaluate_all("rows => rows.map(r => r.dataset.flagged)")
        self.assertEqual(set(flags), {"true", "false"}, flags)
        self.assertEqual(flags, sorted(flags, key=lambda f: f != "true"), "flagged rows come first")
        # The address that logged in on one host and failed on another is flagged; the one that
        # only failed, on three hosts, is not.
        self.assertEqual(rows.filter(has_text=FLAGGED_IP).first.get_attribute("data-flagged"), "true")
        self.assertEqual(rows.filter(has_text=SHARED_IP).first.get_attribute("data-flagged"), "false")

    def test_it_sorts_the_day_table_by_a_clicked_header(self):
        page = self.log_in()
        self.visit(page, f"/days/{self.today.isoformat()}/")
        table = page.locator("main#content table.data-table").first
        headers = table.locator("thead th")
        # The column with the most distinct values: its two orders must differ.
        columns = [table.evaluate(f"(t) => ({COLUMN})([t, {i}])") for i in range(headers.count())]
        index = max(range(len(columns)), key=lambda i: (len(set(columns[i])), -i))
        self.assertGreater(len(set(columns[index])), 1, columns)

        orders = []
        for _ in range(2):
            headers.nth(index).click()
            direction = headers.nth(index).get_attribute("aria-sort")
            self.assertIn(direction, ("ascending", "descending"))
            values = table.evaluate(f"(t) => ({COLUMN})([t, {index}])")
            keys = [sort_key(v) for v in values]
            self.assertEqual(keys, sorted(keys, reverse=direction == "descending"), values)
            orders.append((direction, values))
        # A second click turns the order round.
        self.assertNotEqual(orders[0][0], orders[1][0])
        self.assertNotEqual(orders[0][1], orders[1][1])
        self.assertEqual(self.problems, [])

    def test_the_admin_the_browsable_api_and_swagger_ui_work_under_the_content_security_policy(self):
        # No inline script or style is allowed anywhere: each page must work without any (a
        # blocked one is a console error, which visit() fails on).
        page = self.log_in()
        web1 = self.hosts["web1"]
        for path in ("/admin/", "/admin/inventory_app/host/", f"/admin/inventory_app/host/{web1.pk}/change/",
                     "/api/v1/hosts/", "/api/docs/"):  # fmt: skip
            self.visit(page, path)
            self.assertIn("script-src 'self';", page.request.get(path).headers["content-security-policy"])
        # Swagger UI drew the schema (its setup script is a file of its own).
        page.wait_for_selector(".swagger-ui .info .title", timeout=10_000)
        page.wait_for_selector(".opblock-summary-path", timeout=10_000)
        # The browsable API's logout is a form, not an inline onclick: it works.
        self.visit(page, "/api/v1/hosts/")
        page.click("form.navbar-form button[type=submit]")
        page.wait_for_url(f"{self.live_server_url}/accounts/login/**")
        self.assertEqual(self.problems, [])

    def test_it_shows_a_hostile_alert_as_text_and_acknowledges_it(self):
        page = self.log_in()
        self.visit(page, "/alerts/")
        row = page.locator("#alert-table tbody tr[data-state=open]")
        self.assertEqual(row.count(), 1)
        # The user name is text: the markup as written, the override shown as [U+202E], no <img>.
        user = row.locator(".user-name")
        self.assertEqual(user.inner_text(), f"{HOSTILE}admin[U+202E]txt.exe")
        self.assertNotIn("\u202e", row.inner_text())
        self.assertEqual(page.locator('img[src="x"]').count(), 0)
        # Acknowledged in the page: it leaves the open alerts, and shows who acknowledged it.
        row.get_by_role("button", name="Acknowledge").click()
        page.wait_for_url(f"{self.live_server_url}/alerts/")
        self.assertEqual(page.locator("#alert-table tbody tr[data-state]").count(), 0)
        self.visit(page, "/alerts/?state=acknowledged")
        done = page.locator("#alert-table tbody tr[data-state=acknowledged]")
        self.assertIn("acknowledged by admin", done.inner_text())
        self.assertEqual(self.problems, [])  # no dialog: alert(1) never ran

    def test_it_lists_todays_logins_linked_to_their_host(self):
        page = self.log_in()
        self.visit(page, "/")
        page.locator("nav").get_by_role("link", name="Logins").click()
        page.wait_for_url(f"{self.live_server_url}/logins/")
        self.wait_for_charts(page)
        rows = page.locator("#login-table tbody tr")
        self.assertEqual(rows.count(), 2)
        # Newest first: the hostile name as text, marked as after failures (it failed on bastion).
        self.assertEqual(rows.nth(0).get_attribute("data-after-failures"), "true")
        self.assertTrue(rows.nth(0).get_by_text(HOSTILE, exact=True).is_visible())
        self.assertEqual(page.locator('img[src="x"]').count(), 0)
        office = rows.nth(1)
        self.assertEqual(office.get_attribute("data-after-failures"), "false")
        for text in ("deploy", OFFICES[0], "port 50022", "publickey", OFFICE_KEY, "(0:05:00)"):
            self.assertIn(text, office.inner_text())
        # A filter narrows it; the host link leads to the host's day with the same login.
        page.fill("input[name=user]", "deploy")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url("**/logins/?**user=deploy**")
        self.assertEqual(page.locator("#login-table tbody tr").count(), 1)
        page.locator("#login-table").get_by_role("link", name="web1").click()
        page.wait_for_url(f"{self.live_server_url}/hosts/web1/?day={self.today.isoformat()}")
        self.wait_for_charts(page)
        self.assertIn(OFFICE_KEY, page.locator("#host-logins").inner_text())
        self.assertEqual(self.problems, [])

    def test_it_fits_the_overview_on_a_phone(self):
        page = self.log_in(PHONE)
        self.visit(page, "/")
        # The page never scrolls sideways (a wide table scrolls inside its own wrapper).
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
        )
        self.assertLessEqual(max(widths[:2]), widths[2], widths)


def sort_key(text: str) -> tuple:
    """Numbers as numbers ("1,204" too), everything else as folded text; numbers first."""
    try:
        return (0, float(text.replace(",", "").replace("\u202f", "").replace(" ", "")), "")
    except ValueError:
        return (1, 0.0, text.casefold())


DEMO_TOKEN = "demo-browser-token-0123456789"


@override_settings(
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    ALPHA_AGENT_TOKEN=DEMO_TOKEN,
    ALPHA_POLL_READ_TIMEOUT=10.0,
)
class DemoBrowserTests(DashboardBrowserTests):
    """The pages with run-system.sh's demo host, as a new user first sees them: the demo log read
    by the real agent, served by its API on the live server and polled. The README's screenshots
    come from here (ALPHA_SCREENSHOTS=docs/screenshots)."""

    def fleet(self, today: date) -> dict[str, Host]:
        from collector.demo import DemoLog
        from collector.tests.helpers import write_log
        from inventory_app import polling

        write_log(DemoLog().history(timezone.now(), 14))
        demo = Host.objects.create(name="demo", url=self.live_server_url, token=DEMO_TOKEN, tags="demo")
        assert polling.poll_host(demo.pk) == OK, Host.objects.get(pk=demo.pk).last_error
        return {"demo": demo}

    def test_it_shows_the_demo_host_labelled_on_every_page(self):
        page = self.log_in()
        # Yesterday's page, not today's: the demo log ends now, so just after midnight today has
        # no connection yet and its chart nothing to draw (CI once ran this at 00:05).
        day = (self.today - timedelta(days=1)).isoformat()
        pages = {"overview": "/", "host": "/hosts/demo/", "day": f"/days/{day}/", "attackers": "/attackers/"}
        for name, path in pages.items():
            self.assertGreater(self.visit(page, path), 0, path)
            if name != "attackers":
                self.assertGreater(page.get_by_text("demo data", exact=True).count(), 0, path)
            self.screenshot(page, name)
        # The address that failed four passwords and then got in is flagged.
        self.visit(page, "/attackers/")
        self.assertEqual(
            page.locator("main#content tr[data-flagged]")
            .filter(has_text="198.51.100.77")
            .first.get_attribute("data-flagged"),
            "true",
        )
        phone = self.log_in(PHONE)
        self.visit(phone, "/")
        self.screenshot(phone, "overview-phone")
        self.assertEqual(self.problems, [])

    # The synthetic fleet's own tests do not apply to the demo host alone.
    test_it_draws_every_chart_of_every_page = None
    test_it_shows_a_hostile_user_name_as_text = None
    test_it_links_each_host_of_the_overview_to_its_page = None
    test_it_says_so_when_a_chart_has_nothing_to_draw = None
    test_it_lists_flagged_attackers_first = None
    test_it_sorts_the_day_table_by_a_clicked_header = None
    test_it_fits_the_overview_on_a_phone = None
    test_the_admin_the_browsable_api_and_swagger_ui_work_under_the_content_security_policy = None
    test_it_sends_anonymous_visitors_to_the_login_page = None
    test_it_shows_a_hostile_alert_as_text_and_acknowledges_it = None
    test_it_lists_todays_logins_linked_to_their_host = None
