"""The fleet's stored counts, aggregated in the database: the queries behind the central API.

Every function costs a fixed number of queries, whatever the number of hosts or addresses.
"""

from __future__ import annotations

from datetime import date

from django.db.models import (
    BigIntegerField,
    Count,
    DateField,
    F,
    FilteredRelation,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from .answers import DAY_COUNTS  # the counts of a day, on a host and summed over hosts
from .models import Host, HostDay, HostSource

TOP = 10

_ZERO = Value(0, output_field=BigIntegerField())


def hosts_with_day(day: date) -> QuerySet[Host]:
    """Every host with its counts of `day` as annotations (zeros and polled_at None without a
    stored day): one LEFT JOIN, not a query per host."""
    return (
        Host.objects.annotate(stored=FilteredRelation("days", condition=Q(days__day=day)))
        .annotate(
            counts_day=Value(day, output_field=DateField()),
            polled_at=F("stored__polled_at"),
            **{name: Coalesce(F(f"stored__{name}"), _ZERO) for name in DAY_COUNTS},
        )
        .order_by("name")
    )


def day_totals(day: date) -> dict[str, int]:
    """The day's counts summed over the hosts (unique_sources too: an address seen by two hosts
    counts twice)."""
    return HostDay.objects.filter(day=day).aggregate(
        **{name: Coalesce(Sum(name), _ZERO) for name in DAY_COUNTS}
    )


def fleet_day(day: date) -> dict:
    """One row per host (name, state, polled_at, counts) and their totals: two queries."""
    fields = ("name", "state", "polled_at", *DAY_COUNTS)
    return {
        "date": day,
        "hosts": list(hosts_with_day(day).values("pk", *fields)),
        "totals": day_totals(day),
    }


def fleet_days(since: date, until: date) -> list[dict]:
    """The fleet's totals per day in date order, with how many hosts stored each day; days no
    host stored are left out (as the agent leaves out days without connections)."""
    rows = (
        HostDay.objects.filter(day__gte=since, day__lte=until)
        .values("day")
        .annotate(hosts=Count("host"), **{name: Sum(name) for name in DAY_COUNTS})
        .order_by("day")
    )
    return [{"date": row.pop("day"), **row} for row in rows]


def top_sources(host: Host, day: date) -> list[dict]:
    """The host's busiest addresses of the day, ordered as the agent orders its own."""
    return list(
        HostSource.objects.filter(host=host, day=day)
        .order_by("-sessions", "-failed_attempts", "ip")
        .values("ip", "sessions", "failed_attempts", "accepted")[:TOP]
    )


def shared_sources(day: date, min_hosts: int) -> QuerySet:
    """Addresses seen on at least `min_hosts` hosts on `day`, busiest first, as dicts: ip, hosts,
    sessions, failed_attempts, accepted, flagged. host_names come from `add_host_names` for the
    page only.

    flagged: the address logged in on one host and failed on another, which is what a guessed
    or stolen password looks like from the fleet's side. One host that saw both (a user who
    mistyped, then logged in) is not flagged.
    """
    accepting = Count("host", filter=Q(accepted__gt=0), distinct=True)
    failing = Count("host", filter=Q(failed_attempts__gt=0), distinct=True)
    both = Count("host", filter=Q(accepted__gt=0, failed_attempts__gt=0), distinct=True)
    return (
        HostSource.objects.filter(day=day)
        .values("ip")
        # Per-host columns first: the sums below take their names (what the API calls them).
        .annotate(
            hosts=Count("host", distinct=True),
            accepting_hosts=accepting,
            failing_hosts=failing,
            both_hosts=both,
        )
        .annotate(
            sessions=Sum("sessions"),
            failed_attempts=Sum("failed_attempts"),
            accepted=Sum("accepted"),
        )
        .filter(hosts__gte=min_hosts)
        # A login on some host and a failure on some host are "on another" unless the two sets
        # are the same single host.
        .annotate(
            flagged=Q(accepting_hosts__gte=1, failing_hosts__gte=1)
            & ~Q(accepting_hosts=1, failing_hosts=1, both_hosts=1)
        )
        # The address breaks ties: pages neither skip nor repeat one.
        .order_by("-sessions", "ip")
    )


def add_host_names(day: date, rows: list[dict]) -> list[dict]:
    """Give each row of a page its host names (sorted): one query for the whole page, portable
    where ArrayAgg/GROUP_CONCAT are not."""
    names: dict[str, list[str]] = {row["ip"]: [] for row in rows}
    pairs = (
        HostSource.objects.filter(day=day, ip__in=list(names))
        .order_by("ip", "host__name")
        .values_list("ip", "host__name")
    )
    for ip, name in pairs:
        names[ip].append(name)
    for row in rows:
        row["host_names"] = names[row["ip"]]
    return rows
