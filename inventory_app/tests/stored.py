"""Hosts, days and sources stored straight in the database, for the tests of what reads them (the
central API and the dashboard)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.utils import timezone

from collector.contract import COUNT_NAMES
from inventory_app.models import OK, FleetAddress, Host, HostDay, HostSource, HostSourceQuerySet

DAY = date(2026, 3, 2)
SEEN = datetime(2026, 3, 2, 12, tzinfo=UTC)


def make_host(name: str, state: str = OK, **fields) -> Host:
    return Host.objects.create(name=name, url=f"http://{name}.example:8001", token="t" * 20, state=state,
                               **fields)  # fmt: skip


def store_day(host: Host, day: date, base: int, top_users: list | None = None,
              polled_at: datetime | None = None) -> HostDay:  # fmt: skip
    """A day whose counts are base, base + 1, ... in the contract's order."""
    counts = {name: base + i for i, name in enumerate(COUNT_NAMES)}
    return HostDay.objects.create(host=host, day=day, top_users=top_users or [],
                                  polled_at=polled_at or timezone.now(), **counts)  # fmt: skip


def store_source(host: Host, ip: str, sessions: int, failed: int, accepted: int, day: date = DAY,
                 users: list | None = None, seen: datetime = SEEN) -> HostSource:  # fmt: skip
    """A source of the host's day, added to the fleet's sums (FleetAddress) as polling adds it."""
    source = HostSource.objects.create(host=host, day=day, ip=ip, sessions=sessions, failed_attempts=failed,
                                       accepted=accepted, users=users or ["root"], first_seen=seen,
                                       last_seen=seen + timedelta(minutes=5))  # fmt: skip
    row = HostSource.objects.filter(pk=source.pk).values_list(*HostSourceQuerySet.ROLLUP).get()
    FleetAddress.objects.change(host.pk, [(day, None, row)])
    return source
