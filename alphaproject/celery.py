"""The Celery app of the central server (polling runs here, see inventory_app)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alphaproject.settings")

app = Celery("alphaproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
