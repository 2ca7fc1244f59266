"""Production settings: `check --deploy` clean as documented, logins behind a TLS proxy, and the
security headers on every page."""

from __future__ import annotations

import os
import subprocess
import sys

from django.contrib.auth.models import User
from django.test import Client, TestCase, override_settings

from collector.tests.helpers import ROOT

# The README's production environment for the central server (deploy/central.env.example).
PRODUCTION = {
    "SECRET_KEY": "Zx3Qe0p9bH1Uo7mJcV5nT8rLwK2sYdA6fG4iEq_u-NjMhBvCyRtWlXkO3aPzS1gD",
    "ALLOWED_HOSTS": "alpha.example.com",
    "ALPHA_HTTPS": "1",
    "ALPHA_BEHIND_PROXY": "1",
    "DATABASE_URL": "postgres://alpha@127.0.0.1:5432/alpha",
}


def check_deploy(**env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ALPHA_", "DJANGO_"))}
    environment.pop("DEBUG", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        env={**environment, **env}, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


class DeployCheckTests(TestCase):
    def test_it_passes_check_deploy_with_the_documented_production_settings(self):
        for role in ("central", "agent"):
            with self.subTest(role):
                done = check_deploy(**PRODUCTION, ALPHA_ROLE=role)
                self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
                self.assertIn("System check identified no issues", done.stdout)

    def test_it_says_in_one_line_what_is_missing_whatever_the_command(self):
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("ALPHA_", "DJANGO_"))}
        for name in ("SECRET_KEY", "DEBUG", "DATABASE_URL"):
            environment.pop(name, None)
        for command in (["check"], ["makemigrations", "--check", "--dry-run"], ["migrate"]):
            with self.subTest(command[0]):
                done = subprocess.run(
                    [sys.executable, str(ROOT / "manage.py"), *command],
                    env=environment, cwd=ROOT, capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertTrue(done.stderr.startswith("Configuration error: Set SECRET_KEY"), done.stderr)
                self.assertNotIn("Traceback", done.stderr)
                self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)

    def test_it_warns_without_https(self):
        # Not a test that cannot fail: the same check does warn when the settings are missing.
        done = check_deploy(**{**PRODUCTION, "ALPHA_HTTPS": "0"}, ALPHA_ROLE="central")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("security.W004", done.stderr + done.stdout)


@override_settings(
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    ALLOWED_HOSTS=["alpha.example.com"],
    CSRF_COOKIE_SECURE=True,
    SESSION_COOKIE_SECURE=True,
)
class BehindAProxyTests(TestCase):
    def setUp(self):
        User.objects.create_user("erin", password="pw-of-erin")

    def log_in(self, **headers) -> int:
        client = Client(enforce_csrf_checks=True, HTTP_HOST="alpha.example.com")
        client.get("/accounts/login/", **headers)
        token = client.cookies["csrftoken"].value
        response = client.post(
            "/accounts/login/",
            {"username": "erin", "password": "pw-of-erin", "csrfmiddlewaretoken": token},
            HTTP_ORIGIN="https://alpha.example.com",
            **headers,
        )
        self.response = response
        return response.status_code

    def test_it_logs_in_when_the_proxy_says_https(self):
        self.assertEqual(self.log_in(HTTP_X_FORWARDED_PROTO="https"), 302)

    def test_it_says_what_to_check_when_the_proxy_does_not(self):
        self.assertEqual(self.log_in(), 403)
        self.assertContains(self.response, "X-Forwarded-Proto: https", status_code=403)
        self.assertContains(self.response, "ALPHA_BEHIND_PROXY=1", status_code=403)


class SecurityHeaderTests(TestCase):
    def test_every_page_sends_the_content_security_policy(self):
        staff = User.objects.create_superuser("admin", password="pw")
        self.client.force_login(staff)
        for path in ("/accounts/login/", "/admin/", "/admin/inventory_app/host/", "/api/v1/hosts/",
                     "/api/docs/", "/api/v1/schema/", "/api/v1/health/", "/"):  # fmt: skip
            with self.subTest(path):
                response = self.client.get(path, HTTP_ACCEPT="text/html")
                policy = response["Content-Security-Policy"]
                self.assertIn("script-src 'self';", policy)
                # Only DRF's browsable API gets inline styles (its layout), never inline scripts.
                if path in ("/api/v1/hosts/", "/api/v1/health/"):
                    self.assertIn("style-src 'self' 'unsafe-inline';", policy)
                else:
                    self.assertNotIn("unsafe-inline", policy)
