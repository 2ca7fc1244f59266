"""The dashboard's aggregations over stored host days and sources, in the database.

Every function costs a fixed number of queries whatever the number of hosts; Python only lays
out what the database summed (rows per day, per busiest host or per top address, never per host
of the fleet, except `host_trends`, which returns at most `TREND_DAYS` numbers per host).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from django.db import connection
from django.db.models import BigIntegerField, Count, Max, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from inventory_app import fleet
from inventory_app.models import STATES, Host, HostDay, HostSource

# The connections chart shows this many hosts by name and sums the rest into one dataset. Its
# label has a space, which no host name can contain (models.host_name_validator).
BUSIEST = 8
OTHERS = "other hosts"
TOP = 10
BUSIEST_OF_DAY = 20
TREND_DAYS = 14
# A source's user names as shown in a table cell: the rest are counted, not listed.
MAX_USERS_SHOWN = 8

_ZERO = Value(0, output_field=BigIntegerField())


def days_between(since: date, until: date) -> list[date]:
    return [since + timedelta(days=i) for i in range((until - since).days + 1)]


def in_range(since: date, until: date) -> QuerySet[HostDay]:
    return HostDay.objects.filter(day__gte=since, day__lte=until)


def sources_in_range(since: date, until: date) -> QuerySet[HostSource]:
    return HostSource.objects.filter(day__gte=since, day__lte=until)


# --- Overview -----------------------------------------------------------------------------------


def range_totals(since: date, until: date) -> dict[str, int]:
    """The fleet's counts over the range, and its distinct source addresses (an address seen by
    several hosts or on several days counts once): two queries."""
    totals = in_range(since, until).aggregate(
        **{name: Coalesce(Sum(name), _ZERO) for name in fleet.DAY_COUNTS if name != "unique_sources"}
    )
    # COUNT over SELECT DISTINCT, not COUNT(DISTINCT): PostgreSQL hashes the one and sorts the
    # other (twice to three times slower here on 250,000 rows).
    totals["distinct_sources"] = sources_in_range(since, until).values("ip").distinct().count()
    return totals


def host_states() -> dict[str, int]:
    """How many hosts are in each polling state, every state present (zero or not)."""
    counts = dict.fromkeys((state for state, _ in STATES), 0)
    for row in Host.objects.order_by().values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    return counts


def host_table(today: date) -> list[dict]:
    """Every host by name, with its polling state and today's stored counts: one query."""
    return list(
        fleet.hosts_with_day(today).values(
            "pk",
            "name",
            "state",
            "last_success_at",
            "last_error",
            "polled_at",
            "sessions",
            "accepted",
            "failed_attempts",
        )
    )


def host_trends(since: date, until: date) -> dict[int, list[int]]:
    """Each host's connections per day over the range (at most TREND_DAYS days, ending `until`),
    zeros where nothing is stored: host id -> list in date order. One query, pivoted in the
    database (a row per host, a column per day), so a thousand hosts are a thousand rows."""
    since = max(since, until - timedelta(days=TREND_DAYS - 1))
    days = days_between(since, until)
    columns = {f"d{i}": Sum("sessions", filter=Q(day=day)) for i, day in enumerate(days)}
    rows = in_range(since, until).order_by().values("host_id").annotate(**columns)
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
        in_range(since, until)
        .values("host_id")
        .annotate(total=Sum("sessions"))
        .filter(total__gt=0)
        .order_by("-total", "host__name")
        .values_list("host_id", "host__name")[:busiest]
    )
    columns = {f"h{i}": Sum("sessions", filter=Q(host_id=pk)) for i, (pk, _) in enumerate(top)}
    totals = [0] * len(days)
    series = [[0] * len(days) for _ in top]
    per_day = in_range(since, until).order_by().values("day").annotate(total=Sum("sessions"), **columns)
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
    """The fleet's counts per day over the range, zeros on days no host stored: one query."""
    days = days_between(since, until)
    index = {day: i for i, day in enumerate(days)}
    counts = {name: [0] * len(days) for name in fleet.DAY_COUNTS}
    for row in fleet.fleet_days(since, until):
        for name in fleet.DAY_COUNTS:
            counts[name][index[row["date"]]] = row[name]
    return {"days": days, **counts}


# --- Host detail --------------------------------------------------------------------------------


def host_series(host: Host, since: date, until: date) -> dict:
    """The host's stored counts per day over the range, zeros where none are stored: one query."""
    days = days_between(since, until)
    index = {day: i for i, day in enumerate(days)}
    counts = {name: [0] * len(days) for name in fleet.DAY_COUNTS}
    for row in in_range(since, until).filter(host=host).values("day", *fleet.DAY_COUNTS):
        for name in fleet.DAY_COUNTS:
            counts[name][index[row["day"]]] = row[name]
    return {"days": days, **counts}


def host_totals(host: Host, since: date, until: date) -> dict[str, int]:
    return (
        in_range(since, until)
        .filter(host=host)
        .aggregate(
            days=Count("pk"),
            **{name: Coalesce(Sum(name), _ZERO) for name in fleet.DAY_COUNTS if name != "unique_sources"},
        )
    )


def host_top_sources(host: Host, since: date, until: date, top: int = TOP) -> list[dict]:
    """The host's busiest addresses over the range (summed over its days), with the user names
    each tried: two queries."""
    rows = list(
        HostSource.objects.filter(host=host, day__gte=since, day__lte=until)
        .values("ip")
        .annotate(
            sessions=Sum("sessions"),
            failed_attempts=Sum("failed_attempts"),
            accepted=Sum("accepted"),
            days=Count("day"),
            first_seen=Min("first_seen"),
            last_seen=Max("last_seen"),
        )
        .order_by("-sessions", "-failed_attempts", "ip")[:top]
    )
    users: dict[str, set[str]] = {row["ip"]: set() for row in rows}
    # JSON lists are not aggregated portably in SQL; these are at most `top` addresses' days.
    for ip, names in HostSource.objects.filter(
        host=host, day__gte=since, day__lte=until, ip__in=list(users)
    ).values_list("ip", "users"):
        users[ip].update(str(name) for name in names or [])
    for row in rows:
        names = sorted(users[row["ip"]])
        row["users"] = names[:MAX_USERS_SHOWN]
        row["more_users"] = len(names) - len(row["users"])
    return rows


def host_top_users(host: Host, since: date, until: date, top: int = TOP) -> list[dict]:
    """The host's busiest user names over the range: each stored day keeps only its agent's top
    ten, so over several days these are sums of daily top tens (exact for one day). One query;
    the JSON lists (ten entries a day) are added up here."""
    users: dict[str, dict[str, int]] = {}
    for entries in in_range(since, until).filter(host=host).values_list("top_users", flat=True):
        for entry in entries or []:
            if not isinstance(entry, dict) or "user" not in entry:
                continue
            sums = users.setdefault(str(entry["user"]), {"sessions": 0, "failed_attempts": 0, "accepted": 0})
            for name in sums:
                value = entry.get(name)
                sums[name] += value if isinstance(value, int) else 0
    rows = [{"user": user, **sums} for user, sums in users.items()]
    rows.sort(key=lambda row: (-row["sessions"], -row["failed_attempts"], row["user"]))
    return rows[:top]


# --- Day view -----------------------------------------------------------------------------------


def busiest_on(day: date, top: int = BUSIEST_OF_DAY) -> list[dict]:
    """The day's busiest hosts by connections (then by name), with how those connections ended:
    one query."""
    return list(
        HostDay.objects.filter(day=day)
        .order_by("-sessions", "host__name")
        .values("host__name", "sessions", "accepted", "failed_sessions")[:top]
    )


# --- Attackers ----------------------------------------------------------------------------------


def attackers(since: date, until: date) -> QuerySet:
    """Source addresses over the range across the fleet, as dicts: ip, hosts, sessions,
    failed_attempts, accepted, first_seen, last_seen, flagged. Flagged addresses come first,
    then the most failed attempts, then the address (a stable order for pages).

    flagged: the address failed a password somewhere in the fleet and also logged in somewhere
    (the same host or another) within the range: a guessed or stolen password looks like this.
    """
    return (
        sources_in_range(since, until)
        .values("ip")
        .annotate(
            hosts=Count("host", distinct=True),
            sessions=Sum("sessions"),
            failed_attempts=Sum("failed_attempts"),
            accepted=Sum("accepted"),
            first_seen=Min("first_seen"),
            last_seen=Max("last_seen"),
        )
        .annotate(flagged=Q(accepted__gt=0, failed_attempts__gt=0))
        .order_by("-flagged", "-failed_attempts", "ip")
    )


def attackers_per_day(since: date, until: date) -> dict:
    """Distinct addresses per day over the fleet: all, those that failed, those that logged in.
    One query."""
    days = days_between(since, until)
    index = {day: i for i, day in enumerate(days)}
    counts = {name: [0] * len(days) for name in ("addresses", "failing", "accepting")}
    rows = (
        sources_in_range(since, until)
        .order_by()
        .values("day")
        .annotate(
            addresses=Count("ip", distinct=True),
            failing=Count("ip", distinct=True, filter=Q(failed_attempts__gt=0)),
            accepting=Count("ip", distinct=True, filter=Q(accepted__gt=0)),
        )
    )
    for row in rows:
        for name in counts:
            counts[name][index[row["day"]]] = row[name]
    return {"days": days, **counts}


def add_user_names(since: date, until: date, rows: list[dict]) -> list[dict]:
    """Give each row of a page of addresses the user names it tried over the range (sorted, at
    most MAX_USERS_SHOWN, and how many more): one query for the page. The database expands the
    JSON lists and keeps each (address, name) pair once, so what travels is a few names per
    address, not every host-day row of a busy address."""
    names: dict[str, list[str]] = {row["ip"]: [] for row in rows}
    if names:
        table = HostSource._meta.db_table
        if connection.vendor == "postgresql":
            # A stored value that is not a list (never written by polling) expands to nothing.
            expand = (
                "jsonb_array_elements_text(CASE WHEN jsonb_typeof(s.users) = 'array' "
                "THEN s.users ELSE '[]'::jsonb END) AS j(value)"
            )
        else:
            expand = "json_each(CASE WHEN json_type(s.users) = 'array' THEN s.users ELSE '[]' END) AS j"
        placeholders = ", ".join(["%s"] * len(names))
        sql = (
            f'SELECT DISTINCT s.ip, j.value FROM "{table}" s, {expand} '
            f"WHERE s.day >= %s AND s.day <= %s AND s.ip IN ({placeholders})"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [since, until, *names])
            for ip, name in cursor.fetchall():
                names[ip].append(str(name))
    for row in rows:
        found = sorted(names[row["ip"]])
        row["users"] = found[:MAX_USERS_SHOWN]
        row["more_users"] = len(found) - len(row["users"])
    return rows
