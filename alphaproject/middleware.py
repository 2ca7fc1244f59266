"""Security headers and the CSRF failure page, for every response of both roles."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.html import escape

# No inline script or style anywhere: the dashboard, the admin, the login page, the browsable API
# and Swagger UI (served split: its setup script is a file of its own) all load files from this
# site only. User names from logs are attacker text; this is the second line behind escaping.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'{styles}; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CONTENT_SECURITY_POLICY = POLICY.format(styles="")
# DRF's browsable API lays out its page with style attributes (float, margins): allowed there,
# scripts still only from files.
BROWSABLE_API_POLICY = POLICY.format(styles=" 'unsafe-inline'")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        renderer = getattr(response, "accepted_renderer", None)
        browsable = renderer is not None and renderer.format == "api"
        response.setdefault(
            "Content-Security-Policy", BROWSABLE_API_POLICY if browsable else CONTENT_SECURITY_POLICY
        )
        return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Django's 403 says "CSRF verification failed"; behind a TLS proxy the cause is nearly
    always the proxy, so say what to check."""
    return HttpResponseForbidden(
        "<!doctype html><title>403 Forbidden</title><h1>Forbidden (CSRF check failed)</h1>"
        f"<p>{escape(reason)}</p>"
        "<p>Behind a TLS reverse proxy, the proxy must pass the original <code>Host</code> and send "
        "<code>X-Forwarded-Proto: https</code>, and Alpha needs <code>ALPHA_BEHIND_PROXY=1</code> "
        "(and the site's address in <code>CSRF_TRUSTED_ORIGINS</code> if the proxy changes the host); "
        'see docs/deploy.md, "TLS in front of both APIs". Otherwise reload the form and try again.</p>',
        content_type="text/html; charset=utf-8",
    )
