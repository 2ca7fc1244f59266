from __future__ import annotations

import os
import tempfile
from datetime import UTC, date, datetime, timedelta

from django.contrib.auth.models import User
from django.test import TestCase, override_settings
from rest_framework.test import APIClient

from collector.agent import Agent
from collector.contract import COUNT_NAMES
from collector.models import DailyCount, DailySource

from .logs import brute_force, login, sample_log

TOKEN = "test-token-0123456789abcdef"
START = datetime(2026, 3, 2, 21, 0)


def when(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@override_settings(ALPHA_AGENT_TOKEN=TOKEN, ALPHA_HOST_NAME="web1")
class AgentApiTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        # Real data: a log read by the agent.
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "auth.log")
            lines = sample_log(START) + brute_force(
                START, 4000, "198.51.100.66", "<img src=x onerror=alert(1)>"
            )
            lines += login(START, 4001, 4002, "198.51.100.66", user="alice")
            with open(path, "w") as f:
                f.write("".join(line + "\n" for line in lines))
            with override_settings(TIME_ZONE="UTC"):
                Agent().read_file(path)

    def setUp(self):
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    def test_it_returns_one_day_with_its_top_sources_and_users(self):
        response = self.client.get("/api/v1/logins/2026-03-02/")
        self.assertEqual(response.status_code, 200)
        data = response.json()
        stored = DailyCount.objects.get(day=date(2026, 3, 2))
        self.assertEqual(data["host"], "web1")
        self.assertEqual(data["date"], "2026-03-02")
        self.assertEqual(data["sessions"], stored.sessions)
        self.assertEqual(data["failed_attempts"], stored.failed_attempts)
        self.assertEqual(data["unique_sources"], DailySource.objects.filter(day=date(2026, 3, 2)).count())
        self.assertLessEqual(len(data["top_sources"]), 10)
        busiest = (
            DailySource.objects.filter(day=date(2026, 3, 2))
            .order_by("-sessions", "-failed_attempts", "ip")
            .first()
        )
        self.assertEqual(data["top_sources"][0], {"ip": busiest.ip, "sessions": busiest.sessions,
                                                  "failed_attempts": busiest.failed_attempts, "accepted": busiest.accepted})  # fmt: skip
        users = {u["user"] for u in data["top_users"]}
        self.assertIn("<img src=x onerror=alert(1)>", users)  # attacker text, returned as data
        self.assertEqual(set(data["top_users"][0]), {"user", "sessions", "failed_attempts", "accepted"})

    def test_it_answers_zeros_for_a_day_without_connections(self):
        data = self.client.get("/api/v1/logins/2020-01-01/").json()
        self.assertEqual(data["sessions"], 0)
        self.assertEqual(data["unique_sources"], 0)
        self.assertEqual((data["top_sources"], data["top_users"]), ([], []))

    def test_it_lists_a_range_of_days_in_order(self):
        response = self.client.get("/api/v1/logins/", {"since": "2026-03-01", "until": "2026-03-31"})
        self.assertEqual(response.status_code, 200)
        data = response.json()
        self.assertEqual(data["host"], "web1")
        self.assertEqual([d["date"] for d in data["days"]], [f"2026-03-{n:02}" for n in range(1, 32)])
        self.assertEqual([d["date"] for d in data["days"] if d["sessions"]], ["2026-03-02", "2026-03-03"])
        self.assertNotIn("top_sources", data["days"][0])

    def test_it_lists_every_day_of_a_range_as_the_day_endpoint_answers_it(self):
        data = self.client.get("/api/v1/logins/", {"since": "2026-02-28", "until": "2026-03-04"}).json()
        # Days without connections are listed too, with the zeros the day endpoint answers.
        self.assertEqual(
            [d["date"] for d in data["days"]],
            ["2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"],
        )
        for row in data["days"]:
            day = self.client.get(f"/api/v1/logins/{row['date']}/").json()
            self.assertEqual(row, {k: v for k, v in day.items() if k in row}, row["date"])
        self.assertEqual(data["days"][0], {"date": "2026-02-28", **dict.fromkeys(COUNT_NAMES, 0)})

    def test_it_rejects_bad_dates_and_ranges_with_json(self):
        for url, params in [
            ("/api/v1/logins/2026-02-30/", {}),
            ("/api/v1/logins/yesterday/", {}),
            ("/api/v1/sources/2026-13-01/", {}),
            ("/api/v1/logins/", {"since": "2026-03-05", "until": "2026-03-01"}),
            ("/api/v1/logins/", {"since": "2020-01-01", "until": "2026-03-01"}),
            ("/api/v1/logins/", {"since": "03/01/2026"}),
            ("/api/v1/sources/2026-03-02/", {"cursor": "not-a-cursor"}),
            ("/api/v1/logins/", {"until": "0001-01-01"}),
            # What the schema does not allow is not silently taken for "not given".
            ("/api/v1/logins/", {"until": ""}),
            ("/api/v1/logins/", {"since": " "}),
            ("/api/v1/sources/2026-03-02/", {"page_size": "null"}),
            ("/api/v1/sources/2026-03-02/", {"page_size": "0"}),
            ("/api/v1/sources/2026-03-02/", {"page_size": "-5"}),
        ]:
            response = self.client.get(url, params)
            self.assertEqual(response.status_code, 400, url)
            self.assertEqual(response["Content-Type"], "application/json")

    def test_it_pages_sources_with_a_cursor(self):
        day = date(2026, 3, 4)
        DailySource.objects.bulk_create(
            DailySource(day=day, ip=f"192.0.2.{i}", sessions=i, failed_attempts=2 * i, accepted=0,
                        first_seen=when(day), last_seen=when(day), users=["root"])
            for i in range(1, 26)
        )  # fmt: skip
        seen = []
        url = "/api/v1/sources/2026-03-04/?page_size=10"
        while url:
            data = self.client.get(url).json()
            self.assertEqual(set(data), {"next", "previous", "results"})
            seen += data["results"]
            url = data["next"]
        self.assertEqual(len(seen), 25)
        self.assertEqual(len({s["ip"] for s in seen}), 25)
        self.assertEqual(
            set(seen[0]),
            {"ip", "sessions", "failed_attempts", "accepted", "users", "first_seen", "last_seen",
             "first_failed", "last_failed", "first_accepted"},
        )  # fmt: skip

    def test_it_lists_the_users_tried_from_each_source(self):
        data = self.client.get("/api/v1/sources/2026-03-02/").json()
        attacker = next(s for s in data["results"] if s["ip"] == "198.51.100.66")
        self.assertEqual(sorted(attacker["users"]), ["<img src=x onerror=alert(1)>", "alice"])
        self.assertEqual(attacker["accepted"], 1)

    def test_it_reports_health_per_source(self):
        data = self.client.get("/api/v1/health/").json()
        self.assertEqual(data["host"], "web1")
        self.assertTrue(data["agent_version"])
        (source,) = data["sources"]
        self.assertEqual(source["kind"], "file")
        self.assertGreater(source["lines_read"], 0)
        self.assertGreater(source["offset"], 0)
        # The file is gone (temporary): its size and unread bytes are unknown, not zero.
        self.assertIsNone(source["unread_bytes"])
        self.assertIsNotNone(source["seconds_since_last_event"])

    def test_it_serves_prometheus_metrics(self):
        response = self.client.get("/metrics")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain"))
        body = response.content.decode()
        total = sum(DailyCount.objects.values_list("sessions", flat=True))
        self.assertIn(f'alpha_connections_total{{outcome="all"}} {float(total)}', body)
        self.assertIn('alpha_events_total{kind="failed"}', body)
        self.assertIn("alpha_lines_read_total{", body)

    def test_it_serves_the_schema_and_swagger_ui_without_a_cdn(self):
        schema = self.client.get("/api/v1/schema/?format=json")
        self.assertEqual(schema.status_code, 200)
        self.assertIn("/api/v1/logins/{day}/", schema.json()["paths"])
        staff = User.objects.create_user("admin", password="pw", is_staff=True)
        browser = APIClient()
        browser.force_login(staff)
        page = browser.get("/api/docs/")
        self.assertEqual(page.status_code, 200)
        html = page.content.decode()
        self.assertNotIn("cdn.jsdelivr", html)
        self.assertIn("/static/drf_spectacular_sidecar/", html)


@override_settings(ALPHA_AGENT_TOKEN=TOKEN)
class AgentApiAuthTests(TestCase):
    urls = [
        "/api/v1/logins/2026-03-02/",
        "/api/v1/logins/",
        "/api/v1/sources/2026-03-02/",
        "/api/v1/health/",
        "/metrics",
    ]

    def test_it_answers_401_without_or_with_a_wrong_token(self):
        for headers in [{}, {"HTTP_AUTHORIZATION": "Bearer wrong-token-0123456789"}, {"HTTP_AUTHORIZATION": "Bearer"},
                        {"HTTP_AUTHORIZATION": "Basic YWRtaW46cHc="}]:  # fmt: skip
            for url in self.urls:
                response = APIClient().get(url, **headers)
                self.assertEqual(response.status_code, 401, (url, headers))
                self.assertIn("detail", response.json())
                self.assertNotIn(TOKEN, response.content.decode())

    def test_it_lets_logged_in_staff_browse_but_not_other_users(self):
        user = User.objects.create_user("bob", password="pw")
        client = APIClient()
        client.force_login(user)
        self.assertEqual(client.get("/api/v1/health/").status_code, 403)
        user.is_staff = True
        user.save()
        self.assertEqual(client.get("/api/v1/health/", HTTP_ACCEPT="text/html").status_code, 200)

    @override_settings(ALPHA_AGENT_TOKEN="")
    def test_it_is_never_open_without_a_configured_token(self):
        for url in self.urls:
            response = APIClient().get(url, HTTP_AUTHORIZATION="Bearer anything-at-all-1234")
            self.assertEqual(response.status_code, 503, url)
            self.assertIn("ALPHA_AGENT_TOKEN", response.json()["detail"])
            self.assertEqual(APIClient().get(url).status_code, 503)


class TokenSettingTests(TestCase):
    def test_it_reads_the_token_from_a_file(self):
        import subprocess
        import sys

        with tempfile.NamedTemporaryFile("w", suffix=".token") as f:
            f.write("from-a-file-0123456789\n")
            f.flush()
            code = "from django.conf import settings; print(settings.ALPHA_AGENT_TOKEN)"
            env = {
                **os.environ,
                "ALPHA_AGENT_TOKEN_FILE": f.name,
                "DJANGO_SETTINGS_MODULE": "alphaproject.test",
            }
            env.pop("ALPHA_AGENT_TOKEN", None)
            out = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + code], env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
        self.assertEqual(out.stdout.strip(), "from-a-file-0123456789")


def test_it_keeps_dates_in_range_of_the_limit():
    # The documented limit: 400 days inclusive is accepted.
    since = date(2025, 1, 1)
    until = since + timedelta(days=399)
    from collector.serializers import RangeParamSerializer

    assert RangeParamSerializer(data={"since": since.isoformat(), "until": until.isoformat()}).is_valid()
    assert not RangeParamSerializer(
        data={"since": since.isoformat(), "until": (until + timedelta(days=1)).isoformat()}
    ).is_valid()
