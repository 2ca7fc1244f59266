"""The periodic task that makes Celery beat poll every host, created by migrate.

Beat reads its schedule from the database (django_celery_beat's DatabaseScheduler), where the
admin can change it. So ALPHA_POLL_INTERVAL only seeds it: once the task exists, migrate leaves
it exactly as it is, interval, enabled flag and all.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

POLL_TASK_NAME = "Poll all hosts"
POLL_TASK = "inventory_app.poll_all_hosts"


def ensure_poll_schedule(using: str = DEFAULT_DB_ALIAS) -> tuple[PeriodicTask, bool]:
    """Create the "Poll all hosts" periodic task if it is missing; never change an existing one.
    Returns the task and whether it was created."""
    with transaction.atomic(using=using):
        existing = PeriodicTask.objects.using(using).filter(name=POLL_TASK_NAME).first()
        if existing is not None:
            return existing, False
        # No unique constraint on (every, period): reuse the first match, or add one.
        interval = (
            IntervalSchedule.objects.using(using)
            .filter(every=settings.ALPHA_POLL_INTERVAL, period=IntervalSchedule.SECONDS)
            .order_by("pk")
            .first()
        ) or IntervalSchedule.objects.using(using).create(
            every=settings.ALPHA_POLL_INTERVAL, period=IntervalSchedule.SECONDS
        )
        # get_or_create: two servers migrating at once end up with one task (the name is unique).
        return PeriodicTask.objects.using(using).get_or_create(
            name=POLL_TASK_NAME,
            defaults={
                "task": POLL_TASK,
                "interval": interval,
                # A round still queued when the next is due is dropped: after workers were down,
                # beat's backlog must not turn into a burst of rounds polling every host again.
                "expire_seconds": settings.ALPHA_POLL_INTERVAL,
                "description": (
                    "Polls every enabled host's agent (one task per host). Created by migrate "
                    "with ALPHA_POLL_INTERVAL; edit the interval here, migrate never changes it."
                ),
            },
        )


PRUNE_TASK_NAME = "Prune old detail"
PRUNE_TASK = "inventory_app.prune_detail"


def ensure_prune_schedule(using: str = DEFAULT_DB_ALIAS) -> tuple[PeriodicTask, bool]:
    """Create the daily "Prune old detail" task if it is missing (never change an existing one)."""
    with transaction.atomic(using=using):
        existing = PeriodicTask.objects.using(using).filter(name=PRUNE_TASK_NAME).first()
        if existing is not None:
            return existing, False
        interval = (
            IntervalSchedule.objects.using(using)
            .filter(every=1, period=IntervalSchedule.DAYS)
            .order_by("pk")
            .first()
        ) or IntervalSchedule.objects.using(using).create(every=1, period=IntervalSchedule.DAYS)
        return PeriodicTask.objects.using(using).get_or_create(
            name=PRUNE_TASK_NAME,
            defaults={
                "task": PRUNE_TASK,
                "interval": interval,
                "description": "Deletes host sources and top users older than ALPHA_RETAIN_DETAIL_DAYS "
                "(daily totals stay). Created by migrate; edit it here.",
            },
        )
