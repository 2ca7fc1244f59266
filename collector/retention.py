"""Keeping the daily totals forever and the per-address and per-user detail for
ALPHA_RETAIN_DETAIL_DAYS: what `manage.py prune` does, on an agent and on a central server.

The central server's tables are pruned by inventory_app, which answers the `pruning` signal (the
agent does not know them): imports go one way.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.db import transaction
from django.db.models import Count
from django.dispatch import Signal

from .models import AcceptedLogin, DailyCount, DailySource, DailyUser

# Sent with `before` (the first day kept in detail); receivers return how many rows they deleted.
pruning = Signal()


def cutoff(today: date, days: int) -> date:
    """The first day whose detail is kept: `days` days, today included."""
    return today - timedelta(days=days - 1)


def prune(today: date, days: int) -> dict[str, int]:
    """Delete detail older than the window; returns rows deleted per table (name: count)."""
    before = cutoff(today, days)
    deleted: dict[str, int] = {}
    with transaction.atomic():
        # A day's distinct sources are the number of its address rows: keep the number first.
        counted = dict(
            DailySource.objects.filter(day__lt=before)
            .addresses()
            .values("day")
            .annotate(n=Count("id"))
            .values_list("day", "n")
        )
        for day, n in counted.items():
            DailyCount.objects.filter(day=day, pruned_sources__isnull=True).update(pruned_sources=n)
        deleted["agent sources"] = DailySource.objects.filter(day__lt=before).delete()[0]
        deleted["agent users"] = DailyUser.objects.filter(day__lt=before).delete()[0]
        deleted["agent logins"] = AcceptedLogin.objects.filter(day__lt=before).delete()[0]
    for _, result in pruning.send(sender=prune, before=before):
        deleted.update(result or {})
    return deleted
