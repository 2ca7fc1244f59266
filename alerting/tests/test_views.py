from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Permission, User
from django.test import TestCase
from django.utils import timezone
from rest_framework.authtoken.models import Token

from alerting.models import ACKNOWLEDGED, OPEN, Alert, Rule
from alerting.rules import BRUTE_FORCE, HOST_NEEDS_LOOK

HOSTILE = "<img src=x onerror=alert(1)>"


def make_alert(kind: str, key: str, hosts: str, minutes_ago: int = 5, **fields) -> Alert:
    seen = timezone.now() - timedelta(minutes=minutes_ago)
    return Alert.objects.create(rule=Rule.objects.get(kind=kind), key=key, summary=f"about {key}", hosts=hosts,
                                first_seen=seen, last_seen=seen, **fields)  # fmt: skip


class AlertApiTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.reader = User.objects.create_user("reader", password="a long test password")
        cls.acker = User.objects.create_user("acker", password="a long test password")
        cls.acker.user_permissions.add(Permission.objects.get(codename="acknowledge_alert"))
        cls.token = Token.objects.create(user=cls.reader)
        cls.brute = make_alert(BRUTE_FORCE, "203.0.113.9", ",web1,web2,", user=HOSTILE, address="203.0.113.9")
        cls.down = make_alert(HOST_NEEDS_LOOK, "web10:down", ",web10,", minutes_ago=50)
        cls.old = make_alert(BRUTE_FORCE, "198.51.100.1", ",web1,", minutes_ago=500, state=ACKNOWLEDGED)

    def get(self, query: str = ""):
        return self.client.get(f"/api/v1/alerts/{query}", HTTP_AUTHORIZATION=f"Token {self.token.key}")

    def test_it_lists_alerts_newest_first_with_their_fields(self):
        response = self.get()
        self.assertEqual(response.status_code, 200)
        data = response.json()
        self.assertEqual(data["count"], 3)
        first = data["results"][0]
        self.assertEqual([r["id"] for r in data["results"]], [self.brute.pk, self.down.pk, self.old.pk])
        self.assertEqual(
            (first["rule"], first["rule_name"], first["user"]), (BRUTE_FORCE, "Brute force", HOSTILE)
        )
        self.assertEqual(first["hosts"], ["web1", "web2"])
        self.assertEqual(first["url"], f"http://127.0.0.1:8000/alerts/?alert={self.brute.pk}")
        self.assertEqual(first["deliveries"], [])

    def test_it_filters_by_state_rule_and_host(self):
        def ids(query):
            return [r["id"] for r in self.get(query).json()["results"]]

        self.assertEqual(ids("?state=open"), [self.brute.pk, self.down.pk])
        self.assertEqual(ids("?state=acknowledged"), [self.old.pk])
        self.assertEqual(ids(f"?rule={HOST_NEEDS_LOOK}"), [self.down.pk])
        # A host matches by its whole name: web1 is not web10.
        self.assertEqual(ids("?host=web1"), [self.brute.pk, self.old.pk])
        self.assertEqual(ids("?host=web1&state=open&rule=brute_force"), [self.brute.pk])

    def test_it_answers_bad_filters_with_a_400(self):
        for query in ("?state=closed", "?rule=nope", "?host=%3Cb%3E", "?page=9"):
            response = self.get(query)
            self.assertIn(response.status_code, (400, 404), query)
            self.assertIn("application/json", response["Content-Type"])

    def test_it_needs_a_user(self):
        self.assertEqual(self.client.get("/api/v1/alerts/").status_code, 401)

    def test_it_needs_the_permission_to_acknowledge(self):
        self.client.force_login(self.reader)
        response = self.client.post(f"/api/v1/alerts/{self.brute.pk}/ack/")
        self.assertEqual(response.status_code, 403)
        self.assertIn("Can acknowledge alerts", response.json()["detail"])
        self.assertEqual(Alert.objects.get(pk=self.brute.pk).state, OPEN)

    def test_it_acknowledges_an_alert(self):
        token = Token.objects.create(user=self.acker)
        response = self.client.post(
            f"/api/v1/alerts/{self.brute.pk}/ack/", HTTP_AUTHORIZATION=f"Token {token.key}"
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            (response.json()["state"], response.json()["acknowledged_by"]), (ACKNOWLEDGED, "acker")
        )
        # Twice changes nothing; an unknown id is a 404.
        again = self.client.post(
            f"/api/v1/alerts/{self.brute.pk}/ack/", HTTP_AUTHORIZATION=f"Token {token.key}"
        )
        self.assertEqual(again.json()["acknowledged_at"], response.json()["acknowledged_at"])
        missing = self.client.post("/api/v1/alerts/999999/ack/", HTTP_AUTHORIZATION=f"Token {token.key}")
        self.assertEqual(missing.status_code, 404)

    def test_it_describes_both_endpoints_in_the_schema(self):
        self.client.force_login(self.reader)
        schema = self.client.get("/api/v1/schema/?format=json").json()
        self.assertIn("/api/v1/alerts/", schema["paths"])
        self.assertIn("post", schema["paths"]["/api/v1/alerts/{id}/ack/"])
