"""Reading the stored counts, as the agent's commands and API show them."""

from __future__ import annotations

from datetime import date

from django.db.models import Count

from .models import DailyCount, DailySource


def day_rows(since: date | None = None, until: date | None = None) -> list[dict]:
    """Per-day counts in date order, with the number of distinct source addresses."""
    sources = DailySource.objects.all()
    if since is not None:
        sources = sources.filter(day__gte=since)
    if until is not None:
        sources = sources.filter(day__lte=until)
    unique = dict(sources.values("day").annotate(n=Count("id")).values_list("day", "n"))
    return [row.as_dict(unique.get(row.day, 0)) for row in DailyCount.objects.for_range(since, until)]
