from __future__ import annotations

from django.urls import path

from . import views

# Under /api/v1/ (alphaproject/urls.py), on the central server only.
urlpatterns = [
    path("alerts/", views.AlertListView.as_view(), name="alerting-alerts"),
    path("alerts/<int:pk>/ack/", views.AlertAckView.as_view(), name="alerting-alert-ack"),
]
