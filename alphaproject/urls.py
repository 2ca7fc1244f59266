from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("collector.urls")),
]
if settings.CENTRAL:
    urlpatterns += [
        path("api/v1/", include("inventory_app.urls")),
        # Login and a POST-only logout for the dashboard (templates in dashboard/templates).
        path("accounts/", include("django.contrib.auth.urls")),
        path("", include("dashboard.urls")),
    ]
