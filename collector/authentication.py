"""The agent API's bearer token: from ALPHA_AGENT_TOKEN(_FILE), compared in constant time."""

from __future__ import annotations

import hmac

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission


class TokenNotConfigured(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "The agent API has no token configured: set ALPHA_AGENT_TOKEN or ALPHA_AGENT_TOKEN_FILE "
        "on this host and restart it."
    )
    default_code = "token_not_configured"


class AgentClient:
    """The caller that presented the agent token (the central server, a script)."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False
    pk = None

    def __str__(self) -> str:
        return "agent token"


class BearerTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Authorization: Bearer <token>'."
            )
        expected = settings.ALPHA_AGENT_TOKEN
        if not expected:
            raise TokenNotConfigured()
        # compare_digest takes the same time wherever the first difference is.
        if not hmac.compare_digest(parts[1], expected.encode()):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return AgentClient(), None

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="alpha"'


class HasAgentTokenOrIsStaff(BasePermission):
    """The token holder, or a logged-in staff user (browsable API, Swagger UI)."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if isinstance(user, AgentClient):
            return True
        if user and user.is_authenticated and user.is_staff:
            return True
        if not settings.ALPHA_AGENT_TOKEN:
            # Never open by default: without a token nobody but staff gets in.
            raise TokenNotConfigured()
        return False


class NoAccess(BasePermission):
    """The project-wide default: a view that does not say who may use it is used by nobody."""

    def has_permission(self, request, view) -> bool:
        return False


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Describes the token in the OpenAPI schema (drf-spectacular finds it by subclassing)."""

    target_class = "collector.authentication.BearerTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "ALPHA_AGENT_TOKEN of the host."}
