"""The dashboard's chart pivots over stored host days and sources, in the database (what the
central API shares with the pages is in inventory_app/fleet.py).

Every function costs a fixed number of queries whatever the number of hosts; Python only lays
out what the database summed (rows per day, per busiest host or per top address, never per host
of the fleet, except `host_trends`, which returns at most `TREND_DAYS` numbers per host).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from django.db.models import Count, Q, Sum

from collector.contract import COUNT_NAMES, TALLIED
from inventory_app import fleet
from inventory_app.fleet import days_between, days_in
from inventory_app.models import Host, HostDay

# The connections chart shows this many hosts by name and sums the rest into one dataset. Its
# label has a space, which no host name can contain (models.host_name_validator).
BUSIEST = 8
OTHERS = "other hosts"
BUSIEST_OF_DAY = 20
TREND_DAYS = 14


def host_trends(since: date, until: date, host_ids: list[int] | None = None) -> dict[int, list[int]]:
    """Each host's connections per day over the range (at most TREND_DAYS days, ending `until`),
    zeros where nothing is stored: host id -> list in date order. One query, pivoted in the
    database (a row per host, a column per day), so a thousand hosts are a thousand rows;
    `host_ids` keeps to those hosts (the overview's page of the host table)."""
    since = max(since, until - timedelta(days=TREND_DAYS - 1))
    days = days_between(since, until)
    columns = {f"d{i}": Sum("sessions", filter=Q(day=day)) for i, day in enumerate(days)}
    rows = days_in(since, until)
    if host_ids is not None:
        rows = rows.filter(host_id__in=host_ids)
    rows = rows.order_by().values("host_id").annotate(**columns)
    trends: dict[int, list[int]] = defaultdict(lambda: [0] * len(days))
    for row in rows.values_list("host_id", *columns):
        trends[row[0]] = [value or 0 for value in row[1:]]
    return trends


def connections_by_host(since: date, until: date, busiest: int = BUSIEST) -> dict:
    """Connections per day, one series per busiest host of the range (most connections first,
    then by name) and one for all the others: two queries, the second pivoted in the database
    (a row per day, a column per busiest host), whatever the number of hosts."""
    days = days_between(since, until)
    index = {day: i for i, day in enumerate(days)}
    top = list(
        days_in(since, until)
        .values("host_id")
        .annotate(total=Sum("sessions"))
        .filter(total__gt=0)
        .order_by("-total", "host__name")
        .values_list("host_id", "host__name")[:busiest]
    )
    columns = {f"h{i}": Sum("sessions", filter=Q(host_id=pk)) for i, (pk, _) in enumerate(top)}
    totals = [0] * len(days)
    series = [[0] * len(days) for _ in top]
    per_day = days_in(since, until).order_by().values("day").annotate(total=Sum("sessions"), **columns)
    for row in per_day:
        i = index[row["day"]]
        totals[i] = row["total"]
        for n in range(len(top)):
            series[n][i] = row[f"h{n}"] or 0
    others = [total - sum(values[i] for values in series) for i, total in enumerate(totals)]
    return {
        "days": days,
        "hosts": [(name, values) for (_, name), values in zip(top, series)],
        "others": others,
    }


def outcomes_per_day(since: date, until: date) -> dict:
    """The fleet's counts of connections, attempts and logins per day over the range, summed over
    the hosts, zeros on days no host stored: one query."""
    days = days_between(since, until)
    index = {day: i for i, day in enumerate(days)}
    counts = {name: [0] * len(days) for name in TALLIED}
    for day, row in fleet.daily_sums(since, until).items():
        for name in TALLIED:
            counts[name][index[day]] = row[name]
    return {"days": days, **counts}


def host_series(host: Host, since: date, until: date) -> dict:
    """The host's stored counts per day over the range, zeros where none are stored: one query."""
    days = days_between(since, until)
    index = {day: i for i, day in enumerate(days)}
    counts = {name: [0] * len(days) for name in COUNT_NAMES}
    for row in days_in(since, until).filter(host=host).values("day", *COUNT_NAMES):
        for name in COUNT_NAMES:
            counts[name][index[row["day"]]] = row[name]
    return {"days": days, **counts}


def busiest_on(day: date, top: int = BUSIEST_OF_DAY) -> list[dict]:
    """The day's busiest hosts by connections (then by name), with how those connections ended:
    one query."""
    return list(
        HostDay.objects.filter(day=day)
        .order_by("-sessions", "host__name")
        .values("host__name", "sessions", "accepted", "failed_sessions")[:top]
    )


def attackers_per_day(since: date, until: date) -> dict:
    """Distinct addresses per day over the fleet (as fleet.distinct_addresses counts them): all,
    those that failed, those that logged in. One query."""
    days = days_between(since, until)
    index = {day: i for i, day in enumerate(days)}
    counts = {name: [0] * len(days) for name in ("addresses", "failing", "accepting")}
    rows = (
        fleet.fleet_addresses_in(since, until)
        .addresses()
        .order_by()
        .values("day")
        .annotate(
            addresses=Count("pk"),
            failing=Count("pk", filter=Q(failed_attempts__gt=0)),
            accepting=Count("pk", filter=Q(accepted__gt=0)),
        )
    )
    for row in rows:
        for name in counts:
            counts[name][index[row["day"]]] = row[name]
    return {"days": days, **counts}
