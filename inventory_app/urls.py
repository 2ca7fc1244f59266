from __future__ import annotations

from django.urls import path

from . import views

# Under /api/v1/ (alphaproject/urls.py), on the central server only.
urlpatterns = [
    path("hosts/", views.HostListView.as_view(), name="inventory-hosts"),
    path("hosts/<str:name>/logins/<str:day>/", views.HostDayView.as_view(), name="inventory-host-day"),
    path("fleet/logins/", views.FleetRangeView.as_view(), name="inventory-fleet-logins"),
    # Before the day's path, which would take "accepted" for a (bad) date.
    path("fleet/logins/accepted/", views.FleetLoginListView.as_view(), name="inventory-fleet-accepted"),
    path("fleet/logins/<str:day>/", views.FleetDayView.as_view(), name="inventory-fleet-day"),
    path("fleet/sources/<str:day>/", views.FleetSourceListView.as_view(), name="inventory-fleet-sources"),
]
