"""The central server's part of `manage.py prune`: host sources and top users older than the
detail window go, the host days' counts stay (collector.retention sends `pruning`)."""

from __future__ import annotations

from datetime import date

from django.db import transaction

from .models import FleetAddress, HostDay, HostLogin, HostSource


def prune_central(sender, before: date, **kwargs) -> dict[str, int]:
    with transaction.atomic():
        sources = HostSource.objects.filter(day__lt=before).delete()[0]
        # Every host's sources of those days are gone, and so are the fleet's sums of them.
        FleetAddress.objects.remove_days(before)
        # The days say their sources are gone: a distinct count over them is a lower bound now.
        HostDay.objects.filter(day__lt=before).exclude(stored_sources=0).update(stored_sources=0)
        users = HostDay.objects.filter(day__lt=before).exclude(top_users=[]).update(top_users=[])
        logins = HostLogin.objects.filter(day__lt=before).delete()[0]
    return {"host sources": sources, "host days' top users": users, "host logins": logins}
