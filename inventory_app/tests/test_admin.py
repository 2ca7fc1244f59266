from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.test import TestCase, TransactionTestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from inventory_app.models import DOWN, NEVER_POLLED, OK, Host

from .agents import closed_port_url

WEB_TOKEN = "web-token-0123456789abcdef"
DB_TOKEN = "db-token-fedcba9876543210"
CHANGELIST = reverse("admin:inventory_app_host_changelist")


def form_data(host: Host, **changes) -> dict:
    data = {
        "name": host.name,
        "url": host.url,
        "token": "",
        "enabled": "on" if host.enabled else "",
        "tags": ",".join(host.tag_list()),
        "notes": host.notes,
        "verify_tls": "on" if host.verify_tls else "",
        "ca_bundle": host.ca_bundle,
        "_save": "Save",
    }
    return data | changes


class HostAdminTests(TestCase):
    def setUp(self):
        self.client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
        self.web = Host.objects.create(
            name="web1", url="https://web1.example.com", token=WEB_TOKEN, tags="web,prod", state=OK
        )
        self.db = Host.objects.create(
            name="db1",
            url="https://db1.example.com",
            token=DB_TOKEN,
            tags="db",
            state=DOWN,
            notes="the billing database",
            # Agent-controlled text must come out escaped.
            last_error="<script>alert(1)</script>",
            consecutive_failures=3,
        )

    def listed(self, query: str = "") -> list[str]:
        response = self.client.get(CHANGELIST + query)
        self.assertEqual(response.status_code, 200)
        return [h.name for h in response.context["cl"].result_list]

    def test_it_lists_hosts_with_their_status(self):
        response = self.client.get(CHANGELIST)

        # Both hosts, their states and tags; the agent's error escaped, not run.
        self.assertContains(response, "web1")
        self.assertContains(response, "db1")
        self.assertContains(response, "prod, web")
        self.assertContains(response, "&lt;script&gt;alert(1)&lt;/script&gt;")
        self.assertNotContains(response, "<script>alert(1)")
        self.assertContains(response, "Poll now")

    def test_it_filters_by_state_and_enabled(self):
        self.assertEqual(self.listed("?state__exact=down"), ["db1"])
        self.assertEqual(self.listed("?state__exact=ok"), ["web1"])
        self.assertEqual(self.listed(f"?state__exact={NEVER_POLLED}"), [])
        Host.objects.filter(name="db1").update(enabled=False)
        self.assertEqual(self.listed("?enabled__exact=0"), ["db1"])

    def test_it_filters_by_tag(self):
        response = self.client.get(CHANGELIST)

        # Every distinct tag is offered, and a tag matches whole, never as a substring.
        self.assertEqual(
            [t for t, _ in response.context["cl"].filter_specs[2].lookup_choices], ["db", "prod", "web"]
        )
        self.assertEqual(self.listed("?tag=web"), ["web1"])
        self.assertEqual(self.listed("?tag=db"), ["db1"])
        self.assertEqual(self.listed("?tag=we"), [])

    def test_it_searches_names_urls_tags_and_notes(self):
        self.assertEqual(self.listed("?q=web1"), ["web1"])
        self.assertEqual(self.listed("?q=db1.example"), ["db1"])
        self.assertEqual(self.listed("?q=prod"), ["web1"])
        self.assertEqual(self.listed("?q=billing"), ["db1"])

    def test_it_never_shows_a_token(self):
        pages = [
            CHANGELIST,
            CHANGELIST + "?q=web",
            reverse("admin:inventory_app_host_change", args=[self.web.pk]),
            reverse("admin:inventory_app_host_change", args=[self.db.pk]),
            reverse("admin:inventory_app_host_add"),
            reverse("admin:inventory_app_host_history", args=[self.web.pk]),
            reverse("admin:inventory_app_host_delete", args=[self.web.pk]),
        ]
        for url in pages:
            with self.subTest(url=url):
                html = self.client.get(url).content.decode()
                self.assertNotIn(WEB_TOKEN, html)
                self.assertNotIn(DB_TOKEN, html)
                self.assertNotIn(WEB_TOKEN[5:], html)
        # The change page shows enough to tell tokens apart.
        self.assertContains(self.client.get(pages[2]), self.web.masked_token())

    def test_it_keeps_the_token_when_the_field_is_left_blank(self):
        self.db.last_error = "before"
        self.db.save()
        url = reverse("admin:inventory_app_host_change", args=[self.db.pk])

        response = self.client.post(url, form_data(self.db, url="https://db1.example.com:8001"))

        # Saved with the old token; polling status untouched.
        self.assertRedirects(response, CHANGELIST)
        self.db.refresh_from_db()
        self.assertEqual((self.db.url, self.db.token), ("https://db1.example.com:8001", DB_TOKEN))
        self.assertEqual(
            (self.db.state, self.db.last_error, self.db.consecutive_failures), (DOWN, "before", 3)
        )

    def test_it_replaces_the_token_when_one_is_typed(self):
        url = reverse("admin:inventory_app_host_change", args=[self.web.pk])

        self.client.post(url, form_data(self.web, token="new-token-0123456789abcdef", tags="web eu"))

        self.web.refresh_from_db()
        self.assertEqual(self.web.token, "new-token-0123456789abcdef")
        self.assertEqual(self.web.tag_list(), ["eu", "web"])

    def test_it_requires_a_token_and_valid_tags_for_a_new_host(self):
        new = Host(name="new1", url="https://new1.example.com")

        response = self.client.post(reverse("admin:inventory_app_host_add"), form_data(new, tags="a!"))

        self.assertEqual(response.status_code, 200)
        errors = response.context["adminform"].form.errors
        self.assertEqual(errors["token"], ["Enter the agent's token."])
        self.assertIn("The tag 'a!' is not valid", errors["tags"][0])
        self.assertFalse(Host.objects.filter(name="new1").exists())

    def test_it_adds_a_host(self):
        new = Host(name="new1", url="https://new1.example.com")

        self.client.post(
            reverse("admin:inventory_app_host_add"), form_data(new, token="new-token-0123456789abcdef")
        )

        self.assertEqual(Host.objects.get(name="new1").token, "new-token-0123456789abcdef")

    def test_it_refuses_a_second_entry_for_an_agent_already_in_the_inventory(self):
        # web1's URL spelled another way: the same agent, which would be counted twice.
        for url in ("HTTPS://Web1.Example.COM:443/", "https://web1.example.com/"):
            with self.subTest(url):
                new = Host(name="web1-again", url=url)
                response = self.client.post(
                    reverse("admin:inventory_app_host_add"),
                    form_data(new, token="new-token-0123456789abcdef"),
                )
                self.assertEqual(response.status_code, 200)
                (error,) = response.context["adminform"].form.errors["url"]
                self.assertIn("web1 already polls the agent at https://web1.example.com", error)
                self.assertFalse(Host.objects.filter(name="web1-again").exists())
        # Another port or path is another agent; an entry may keep its own URL.
        new = Host(name="web1-other", url="https://web1.example.com:8443")
        self.client.post(
            reverse("admin:inventory_app_host_add"), form_data(new, token="new-token-0123456789abcdef")
        )
        self.assertTrue(Host.objects.filter(name="web1-other").exists())
        change = reverse("admin:inventory_app_host_change", args=[self.web.pk])
        self.assertRedirects(
            self.client.post(change, form_data(self.web, url="https://WEB1.example.com/")), CHANGELIST
        )


# Real threads poll here, each with its own connection: they must see committed rows.
@override_settings(ALPHA_POLL_CONNECT_TIMEOUT=0.5, ALPHA_POLL_READ_TIMEOUT=0.5, ALPHA_POLL_HEALTH_TIMEOUT=0.5)
class PollNowActionTests(TransactionTestCase):
    def test_it_polls_the_selected_enabled_hosts_and_records_the_error(self):
        self.client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
        dead = Host.objects.create(name="dead1", url=closed_port_url(), token=WEB_TOKEN)
        off = Host.objects.create(name="off1", url=closed_port_url(), token=WEB_TOKEN, enabled=False)
        untouched = Host.objects.create(name="other1", url=closed_port_url(), token=WEB_TOKEN)

        response = self.client.post(
            CHANGELIST, {"action": "poll_now", "_selected_action": [dead.pk, off.pk]}, follow=True
        )

        # The dead host is down with a sentence saying why; the others were not polled.
        self.assertContains(response, "Polled 1 host(s): 1 down, 1 disabled, not polled.")
        dead.refresh_from_db()
        self.assertEqual((dead.state, dead.consecutive_failures), (DOWN, 1))
        self.assertIn("Cannot connect to", dead.last_error)
        self.assertIsNone(dead.polling_since)
        for host in (off, untouched):
            host.refresh_from_db()
            self.assertEqual((host.state, host.last_poll_at), (NEVER_POLLED, None))


class WriteOnlyTokenTests(TestCase):
    """No staff user, view-only or not, can read an agent token back through the admin."""

    def setUp(self):
        self.host = Host.objects.create(name="web1", url="https://web1.example.com", token=WEB_TOKEN)
        viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_host"))
        self.client.force_login(viewer)

    def test_it_refuses_every_lookup_on_the_token(self):
        # One token in ~1,000 requests, a character at a time, if any of these answered.
        for query in (
            "?token__startswith=w",
            "?token__regex=^web",
            "?token=" + WEB_TOKEN,
            "?token__contains=token",
        ):
            with self.subTest(query):
                self.assertEqual(self.client.get(CHANGELIST + query).status_code, 400)
        # A search never looks at it either.
        response = self.client.get(CHANGELIST + "?q=" + WEB_TOKEN)
        self.assertEqual(list(response.context["cl"].result_list), [])

    def test_it_never_shows_the_token_on_a_view_only_page(self):
        response = self.client.get(reverse("admin:inventory_app_host_change", args=[self.host.pk]))
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, WEB_TOKEN)
        self.assertContains(response, self.host.masked_token())

    def test_it_needs_the_change_permission_to_poll_now(self):
        response = self.client.get(CHANGELIST)
        self.assertNotContains(response, 'value="poll_now"')
        response = self.client.post(CHANGELIST, {"action": "poll_now", "_selected_action": [self.host.pk]})
        self.host.refresh_from_db()
        self.assertIsNone(self.host.last_poll_at)  # not polled

    def test_it_says_when_a_claim_of_a_killed_poller_expires(self):
        # A poller killed with -9 leaves its claim: the page says so and until when.
        Host.objects.filter(pk=self.host.pk).update(polling_since=timezone.now())
        response = self.client.get(CHANGELIST)
        self.assertContains(response, "being polled since")
        self.assertContains(response, "claim expires")
