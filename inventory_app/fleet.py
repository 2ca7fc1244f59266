"""The fleet's stored counts, read in the database: what the central API and the dashboard share
(the dashboard's chart pivots are in dashboard/queries.py).

Every function costs a fixed number of queries, whatever the number of hosts or addresses.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import connection
from django.db.models import (
    BigIntegerField,
    Count,
    DateField,
    F,
    FilteredRelation,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from collector.contract import ADDRESS_COUNT_NAMES, COUNT_NAMES, TALLIED, TOP

from . import rollup
from .models import (
    STATES,
    FleetAddress,
    FleetAddressQuerySet,
    FleetAddressTotal,
    FleetAddressTotalQuerySet,
    Host,
    HostDay,
    HostLogin,
    HostSource,
)

# A source's user names as shown in a table cell: the rest are counted, not listed.
MAX_USERS_SHOWN = 8

_ZERO = Value(0, output_field=BigIntegerField())

# What "flagged" means everywhere (API and pages): the address failed a password somewhere in the
# fleet and logged in somewhere in it, on the same host or another, in the days looked at. A
# guessed or stolen password looks like this (and so does a user who mistyped: look at it).
FLAGGED = Q(accepted__gt=0, failed_attempts__gt=0)
FLAGGED_MEANING = (
    "The address failed a password and also logged in, in the fleet and the days asked for "
    "(on the same host or another)."
)


# A range read from the totals over every stored day (FleetAddressTotal), less the stored days
# outside it, when those are at most this share of the range's days; else from its days' rows.
OUTSIDE_SHARE = 1 / 8

# A host's day whose sources are not all stored here: pruned by retention (here, or on its agent
# before it was polled), or only its counts fetched (a live refresh). A distinct count over the
# stored sources then misses that host's own addresses, and says so.
MISSING_SOURCES = Q(unique_sources__gt=F("stored_sources"))
DISTINCT_MEANING = (
    "Distinct source addresses over every host: an address seen by several hosts counts once, and "
    "a source sshd wrote as a name is not an address. A host's own unique_sources is its agent's count."
)
LOWER_BOUND_MEANING = (
    "True when some host's sources of the day are not stored here (pruned by retention, or only "
    "its counts fetched so far): the distinct count covers the stored ones, so there were at least that many."
)


def days_in(since: date, until: date) -> QuerySet[HostDay]:
    return HostDay.objects.for_range(since, until)


def sources_in(since: date, until: date) -> QuerySet[HostSource]:
    return HostSource.objects.filter(day__gte=since, day__lte=until)


def days_between(since: date, until: date) -> list[date]:
    return [since + timedelta(days=i) for i in range((until - since).days + 1)]


def fleet_addresses_in(since: date, until: date) -> QuerySet[FleetAddress]:
    """The fleet's addresses per day (FleetAddress: one row per address and day, kept by polling)."""
    return FleetAddress.objects.filter(day__gte=since, day__lte=until)


def distinct_addresses(sources: QuerySet[HostSource] | QuerySet[FleetAddress]) -> int:
    """How many distinct addresses the rows hold (a host's sources, or the fleet's addresses per
    day), each once however many hosts or days saw it: the one definition of distinct sources
    (the querysets' addresses() say what an address is). One query."""
    # COUNT over SELECT DISTINCT, not COUNT(DISTINCT): PostgreSQL hashes the one and sorts the
    # other (twice to three times slower here on 250,000 rows); the (day, ip) indexes answer it.
    return sources.addresses().values("ip").distinct().count()


def fleet_distinct_addresses(since: date, until: date) -> int:
    """distinct_addresses() of the fleet's rows of the range; from the totals over every stored
    day where the range holds nearly all of them (reads_totals). Two queries."""
    if not reads_totals(since, until):
        return distinct_addresses(fleet_addresses_in(since, until))
    # An address counts where its connections over the range sum above zero (as on one day).
    sql, params = totals_over(since, until)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) r WHERE r.is_address AND r.sessions > 0", params)
        return cursor.fetchone()[0]


def reads_totals(since: date, until: date) -> bool:
    """Whether the range is best read from the totals over every stored day less the stored days
    outside it (totals_over): when those days are few, at most OUTSIDE_SHARE of the range's.
    Either way is exact: this only chooses the cheaper. One query."""
    first, last = stored_days()
    if first is None:
        return True
    outside_days = max(0, (since - first).days) + max(0, (last - until).days)
    return outside_days <= ((until - since).days + 1) * OUTSIDE_SHARE


def totals_over(since: date, until: date) -> tuple[str, list]:
    """SQL for every address's sums over the range (ip, is_address, host_days, sessions,
    failed_attempts, accepted), as the totals over every stored day less the stored days outside
    the range, joined in the database (an address with no host day left was not seen in it),
    and its parameters. A few outside days are a few thousand rows to subtract, against a
    hundred thousand per stored day for the range's own."""
    quote = connection.ops.quote_name
    totals, days = quote(FleetAddressTotal._meta.db_table), quote(FleetAddress._meta.db_table)
    totals_of_days = zip(FleetAddressTotalQuerySet.SUMS, FleetAddressQuerySet.SUMS)
    less = ", ".join(
        f"t.{quote(c)} - COALESCE(o.{quote(c)}, 0) AS {quote(c)}" for c in FleetAddressTotalQuerySet.SUMS
    )
    outside = ", ".join(f"SUM({quote(day)}) AS {quote(total)}" for total, day in totals_of_days)
    day = quote("day")
    sql = (
        f"SELECT t.{quote('ip')} AS ip, t.{quote('is_address')} AS is_address, {less} FROM {totals} t "
        f"LEFT JOIN (SELECT {quote('ip')}, {outside} FROM {days} WHERE {day} < %s OR {day} > %s "
        f"GROUP BY {quote('ip')}) o ON o.{quote('ip')} = t.{quote('ip')}"
    )
    adapt = connection.ops.adapt_datefield_value
    return sql, [adapt(since), adapt(until)]


def stored_days() -> tuple[date | None, date | None]:
    """The first and last day the fleet's rows hold: one query, each an end of the (day, ip)
    index (SQLite scans the whole table for MIN and MAX asked in one SELECT)."""
    table = connection.ops.quote_name(FleetAddress._meta.db_table)
    day = connection.ops.quote_name("day")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT (SELECT MIN({day}) FROM {table}), (SELECT MAX({day}) FROM {table})")
        first, last = cursor.fetchone()
    convert = DateField().to_python  # SQLite returns text
    return convert(first), convert(last)


def distinct_addresses_per_day(since: date, until: date) -> dict[date, int]:
    """distinct_addresses() of each day that has sources stored: one query (the fleet's rows
    are one per address and day already)."""
    rows = fleet_addresses_in(since, until).addresses().order_by().values("day").annotate(n=Count("ip"))
    return {row["day"]: row["n"] for row in rows}


# --- Hosts --------------------------------------------------------------------------------------


def hosts_with_day(day: date) -> QuerySet[Host]:
    """Every host with its counts of `day` as annotations (zeros and polled_at None without a
    stored day): one LEFT JOIN, not a query per host."""
    return (
        Host.objects.annotate(stored=FilteredRelation("days", condition=Q(days__day=day)))
        .annotate(
            counts_day=Value(day, output_field=DateField()),
            polled_at=F("stored__polled_at"),
            **{name: Coalesce(F(f"stored__{name}"), _ZERO) for name in COUNT_NAMES},
        )
        .order_by("name")
    )


def host_states() -> dict[str, int]:
    """How many hosts are in each polling state, every state present (zero or not)."""
    counts = dict.fromkeys((state for state, _ in STATES), 0)
    for row in Host.objects.order_by().values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    return counts


# --- Days ---------------------------------------------------------------------------------------


def day_totals(day: date) -> dict:
    """The day's counts over the hosts: the connections, attempts and logins summed (each
    happened on one host); unique_sources the distinct addresses over every host
    (distinct_addresses), with unique_sources_lower_bound when some host's sources of the day are
    not stored (MISSING_SOURCES). Two queries."""
    totals = HostDay.objects.filter(day=day).aggregate(
        **{name: Coalesce(Sum(name), _ZERO) for name in TALLIED}, missing=Count("pk", filter=MISSING_SOURCES)
    )
    totals["unique_sources"] = fleet_addresses_in(day, day).addresses().count()
    totals["unique_sources_lower_bound"] = totals.pop("missing") > 0
    return totals


def fleet_day(day: date) -> dict:
    """One row per host (name, state, polled_at, its agent's counts) and the fleet's totals
    (day_totals): three queries."""
    fields = ("name", "tags", "state", "polled_at", *COUNT_NAMES)
    return {"date": day, "hosts": list(hosts_with_day(day).values("pk", *fields)), "totals": day_totals(day)}


def daily_sums(since: date, until: date) -> dict[date, dict[str, int]]:
    """For each day some host stored: the counts of connections, attempts and logins summed over
    the hosts, how many hosts stored it (`hosts`) and how many of those lack sources
    (`missing`). One query."""
    rows = (
        days_in(since, until)
        .values("day")
        .annotate(
            hosts=Count("host"),
            missing=Count("pk", filter=MISSING_SOURCES),
            **{name: Sum(name) for name in TALLIED},
        )
        .order_by("day")
    )
    return {row.pop("day"): row for row in rows}


def fleet_days(since: date, until: date) -> list[dict]:
    """The fleet's totals of every day from `since` through `until` in date order, as
    day_totals() gives them, with the hosts that stored the day; a day no host stored is zeros
    (as the agents list a day without connections). Two queries."""
    sums = daily_sums(since, until)
    distinct = distinct_addresses_per_day(since, until)
    nothing = {"hosts": 0, "missing": 0, **dict.fromkeys(TALLIED, 0)}
    days = []
    for day in days_between(since, until):
        row = {"date": day, **sums.get(day, nothing)}
        row["unique_sources"] = distinct.get(day, 0)
        row["unique_sources_lower_bound"] = row.pop("missing") > 0
        days.append(row)
    return days


def range_totals(since: date, until: date, host: Host | None = None) -> dict:
    """The counts over the range (the fleet's, or one host's) summed, with the days stored, and
    the distinct source addresses (distinct_addresses: an address seen by several hosts or on
    several days counts once), with distinct_sources_lower_bound when some day's sources are not
    all stored. Two queries."""
    days = days_in(since, until)
    sources = fleet_addresses_in(since, until)
    if host is not None:
        days, sources = days.filter(host=host), sources_in(since, until).filter(host=host)
    totals = days.aggregate(
        days=Count("pk"),
        missing=Count("pk", filter=MISSING_SOURCES),
        **{name: Coalesce(Sum(name), _ZERO) for name in TALLIED},
    )
    totals["distinct_sources"] = (
        distinct_addresses(sources) if host is not None else fleet_distinct_addresses(since, until)
    )
    totals["distinct_sources_lower_bound"] = totals.pop("missing") > 0
    return totals


# --- Addresses ----------------------------------------------------------------------------------


def top_sources(host: Host, since: date, until: date, top: int = TOP) -> list[dict]:
    """The host's busiest addresses over the days (one day: as its agent orders them): ip, its
    counts summed, days seen, first and last seen. One query."""
    return list(
        sources_in(since, until)
        .filter(host=host)
        .values("ip")
        .annotate(
            **{name: Sum(name) for name in ADDRESS_COUNT_NAMES},
            days=Count("day"),
            first_seen=Min("first_seen"),
            last_seen=Max("last_seen"),
        )
        .order_by("-sessions", "-failed_attempts", "ip")[:top]
    )


def top_users(host: Host, since: date, until: date, top: int = TOP) -> list[dict]:
    """The host's busiest user names over the days: each stored day keeps only its agent's top
    ten, so over several days these are sums of daily top tens (exact for one day). One query;
    the JSON lists (ten entries a day) are added up here."""
    users: dict[str, dict[str, int]] = {}
    for entries in days_in(since, until).filter(host=host).values_list("top_users", flat=True):
        for entry in entries or []:
            if not isinstance(entry, dict) or "user" not in entry:
                continue
            sums = users.setdefault(str(entry["user"]), dict.fromkeys(ADDRESS_COUNT_NAMES, 0))
            for name in sums:
                value = entry.get(name)
                sums[name] += value if isinstance(value, int) else 0
    rows = [{"user": user, **sums} for user, sums in users.items()]
    rows.sort(key=lambda row: (-row["sessions"], -row["failed_attempts"], row["user"]))
    return rows[:top]


def addresses(since: date, until: date) -> QuerySet:
    """Source addresses over the days across the fleet, as dicts: ip, sessions, failed_attempts,
    accepted and flagged (FLAGGED), summed from the fleet's rows per address and day. Unordered:
    the API orders by connections, the attackers page puts the flagged first. How many hosts saw
    each over the days (a distinct count, not a sum of days) is for add_seen(), per page."""
    return (
        fleet_addresses_in(since, until)
        .values("ip")
        .annotate(**{name: Sum(name) for name in ADDRESS_COUNT_NAMES})
        .annotate(flagged=FLAGGED)
    )


def ranked_addresses(since: date, until: date, start: int, stop: int) -> list[dict]:
    """Rows start:stop of addresses() in the attackers page's order: the flagged first, then by
    failed attempts, then by address. From the totals over every stored day where the range
    holds nearly all of them (reads_totals): a row per address rather than per address and day.
    Two queries."""
    if not reads_totals(since, until):
        return list(addresses(since, until).order_by("-flagged", "-failed_attempts", "ip")[start:stop])
    sql, params = totals_over(since, until)
    with connection.cursor() as cursor:
        # FLAGGED, over the range's sums.
        cursor.execute(
            f"SELECT r.ip, r.sessions, r.failed_attempts, r.accepted, (r.accepted > 0 AND r.failed_attempts > 0) "
            f"AS flagged FROM ({sql}) r WHERE r.host_days > 0 ORDER BY flagged DESC, r.failed_attempts DESC, r.ip "
            "LIMIT %s OFFSET %s",
            [*params, stop - start, start],
        )
        names = ("ip", *ADDRESS_COUNT_NAMES)
        return [{**dict(zip(names, row)), "flagged": bool(row[-1])} for row in cursor.fetchall()]


def add_seen(since: date, until: date, rows: list[dict]) -> list[dict]:
    """Give each row of a page of addresses (from addresses()) the hosts that saw it over the
    days (each once), when it was first and last seen, and the user names it tried (sorted, at
    most MAX_USERS_SHOWN, and how many more): two queries for the page, over the fleet's rows
    of those addresses (one a day each, whatever the number of hosts)."""
    seen: dict[str, dict] = {row["ip"]: {"bits": [], "users": set()} for row in rows}
    if not seen:
        return rows
    # Each (day, address) looked up in the (day, ip) index, not the range's every row scanned.
    days = FleetAddress.objects.filter(day__in=days_between(since, until), ip__in=list(seen))
    for ip, host_bits, users in days.values_list("ip", "host_bits", "users"):
        found = seen[ip]
        found["bits"].append(host_bits)
        found["users"].update(users or ())
    times = days.values("ip").annotate(first=Min("first_seen"), last=Max("last_seen"))
    for row in times.values_list("ip", "first", "last"):
        seen[row[0]].update(first=row[1], last=row[2])
    for row in rows:
        found = seen[row["ip"]]
        names = sorted(found["users"])
        row.update(
            hosts=rollup.hosts_in(found["bits"]),
            first_seen=found.get("first"),
            last_seen=found.get("last"),
            users=names[:MAX_USERS_SHOWN],
            more_users=len(names) - min(len(names), MAX_USERS_SHOWN),
        )
    return rows


def shared_sources(day: date, min_hosts: int) -> QuerySet:
    """The day's addresses seen on at least `min_hosts` hosts, busiest first; the address breaks
    ties, so pages neither skip nor repeat one. host_names come from add_host_names, per page."""
    return (
        FleetAddress.objects.filter(day=day, hosts__gte=min_hosts)
        .values("ip", "hosts", *ADDRESS_COUNT_NAMES)
        .annotate(flagged=FLAGGED)
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


def add_user_names(since: date, until: date, rows: list[dict], host: Host | None = None) -> list[dict]:
    """Give each row of a page of addresses the user names it tried over the days (on one host,
    or the fleet): sorted, at most MAX_USERS_SHOWN, and how many more. One query for the page:
    the database expands the JSON lists and keeps each (address, name) pair once, so what
    travels is a few names per address, not every host-day row of a busy address."""
    names: dict[str, list[str]] = {row["ip"]: [] for row in rows}
    if names:
        table = connection.ops.quote_name(HostSource._meta.db_table)
        if connection.vendor == "postgresql":
            # A stored value that is not a list (never written by polling) expands to nothing.
            expand = (
                "jsonb_array_elements_text(CASE WHEN jsonb_typeof(s.users) = 'array' "
                "THEN s.users ELSE '[]'::jsonb END) AS j(value)"
            )
        else:
            expand = "json_each(CASE WHEN json_type(s.users) = 'array' THEN s.users ELSE '[]' END) AS j"
        placeholders = ", ".join(["%s"] * len(names))
        params: list = [since, until, *names]
        where = f"s.day >= %s AND s.day <= %s AND s.ip IN ({placeholders})"
        if host is not None:
            where += " AND s.host_id = %s"
            params.append(host.pk)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT s.ip, j.value FROM {table} s, {expand} WHERE {where}", params)
            for ip, name in cursor.fetchall():
                names[ip].append(str(name))
    for row in rows:
        found = sorted(names[row["ip"]])
        row["users"] = found[:MAX_USERS_SHOWN]
        row["more_users"] = len(found) - len(row["users"])
    return rows


# --- Logins -------------------------------------------------------------------------------------

# A login "after failures": its address failed on some host of the fleet (the one it got in on
# included) before it logged in, and was still failing within this long before it. The alert rule
# "Login after failures" reads the same times with the same default window (it asks for failures
# strictly before the login; here a failure in the login's own second counts, as one connection
# can fail a method and succeed with another within it).
AFTER_FAILURES_WINDOW = timedelta(hours=24)
AFTER_FAILURES_MEANING = (
    "The address failed on some host of the fleet (this one included) before this login, the last "
    "time less than 24 hours before it: a guessed or stolen password looks like this."
)


def logins(since: date, until: date, host: str = "", user: str = "", ip: str = "",
           method: str = "") -> QuerySet[HostLogin]:  # fmt: skip
    """The logins that began on the days across the fleet, newest first, each with its host's
    name (host_name); an empty filter is no filter, a given one (host by name) matches exactly.
    The (day, at) index serves the days and the order; the id breaks ties, so pages neither skip
    nor repeat a login."""
    rows = HostLogin.objects.filter(day__gte=since, day__lte=until)
    for field, value in (("host__name", host), ("user", user), ("ip", ip), ("method", method)):
        if value:
            rows = rows.filter(**{field: value})
    return rows.annotate(host_name=F("host__name")).order_by("-at", "-pk")


def add_after_failures(rows: list[HostLogin], window: timedelta = AFTER_FAILURES_WINDOW) -> list[HostLogin]:
    """Set each login's `after_failures` (AFTER_FAILURES_MEANING), decided on the times its agent
    reported for the address on every host: it first failed no later than the login and last
    failed within `window` before it. One query for the whole page."""
    failures: dict[str, list[tuple[datetime, datetime]]] = {}
    if rows:
        # A source's day is the day its connections began: a failure that reaches into the window
        # may belong to a connection of two local days before the login's (DST, midnight).
        first_day = min(row.day for row in rows) - timedelta(days=2)
        last_day = max(row.day for row in rows)
        times = (
            sources_in(first_day, last_day)
            .addresses()
            .filter(ip__in={row.ip for row in rows}, first_failed__isnull=False, last_failed__isnull=False)
            .values_list("ip", "first_failed", "last_failed")
        )
        for ip, first, last in times:
            failures.setdefault(ip, []).append((first, last))
    for row in rows:
        row.after_failures = any(
            first <= row.at and row.at - window <= last for first, last in failures.get(row.ip, ())
        )
    return rows
