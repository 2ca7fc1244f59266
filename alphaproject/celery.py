"""The Celery app of the central server (polling runs here, see inventory_app)."""

from __future__ import annotations

import gc
import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alphaproject.settings")

app = Celery("alphaproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def collect_garbage_less_often(**kwargs) -> None:
    # A worker only polls: see inventory_app.polling.GC_THRESHOLD (set before the pool starts, so
    # prefork children inherit it too).
    from inventory_app.polling import GC_THRESHOLD

    gc.set_threshold(*GC_THRESHOLD)
