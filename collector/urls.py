from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("api/v1/logins/", views.DayRangeView.as_view(), name="collector-logins"),
    path("api/v1/logins/<str:day>/", views.DayView.as_view(), name="collector-login-day"),
    path(
        "api/v1/logins/<str:day>/accepted/", views.AcceptedLoginListView.as_view(), name="collector-accepted"
    ),
    path("api/v1/sources/<str:day>/", views.SourceListView.as_view(), name="collector-sources"),
    path("api/v1/health/", views.HealthView.as_view(), name="collector-health"),
    path("metrics", views.MetricsView.as_view(), name="collector-metrics"),
]
