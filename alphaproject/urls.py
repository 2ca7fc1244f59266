from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from alphaproject.health import healthz

# Both roles: the agent API and its schema. An agent has no users, so no admin and no login.
urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Split: Swagger UI's setup script is a file, not inline (the Content-Security-Policy).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs.html"),
        name="api-docs",
    ),
    path("", include("collector.urls")),
]
if settings.CENTRAL:
    urlpatterns += [
        path("admin/", admin.site.urls),
        path("api-auth/", include("rest_framework.urls")),
        path("api/v1/", include("inventory_app.urls")),
        path("api/v1/", include("alerting.urls")),
        # Login and a POST-only logout for the dashboard; no password reset (it needs mail settings).
        path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
        path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
        path("", include("dashboard.urls")),
    ]
