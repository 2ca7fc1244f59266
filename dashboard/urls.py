from __future__ import annotations

from django.urls import path

from . import views

# At the site's root (alphaproject/urls.py), on the central server only.
urlpatterns = [
    path("", views.overview, name="dashboard-overview"),
    path("hosts/<str:name>/", views.host_detail, name="dashboard-host"),
    path("days/<str:day>/", views.day_view, name="dashboard-day"),
    path("attackers/", views.attackers, name="dashboard-attackers"),
    path("logins/", views.logins, name="dashboard-logins"),
    path("alerts/", views.alerts, name="dashboard-alerts"),
    path("alerts/<int:pk>/ack/", views.acknowledge_alert, name="dashboard-alert-ack"),
    # The charts' data, {labels, datasets} for Chart.js; named in each <canvas data-url>.
    path("dashboard/data/connections/", views.data_connections, name="dashboard-data-connections"),
    path("dashboard/data/outcomes/", views.data_outcomes, name="dashboard-data-outcomes"),
    path(
        "dashboard/data/hosts/<str:name>/outcomes/",
        views.data_host_outcomes,
        name="dashboard-data-host-outcomes",
    ),
    path("dashboard/data/hosts/<str:name>/users/", views.data_host_users, name="dashboard-data-host-users"),
    path("dashboard/data/days/<str:day>/hosts/", views.data_day_hosts, name="dashboard-data-day-hosts"),
    path("dashboard/data/attackers/", views.data_attackers, name="dashboard-data-attackers"),
]
