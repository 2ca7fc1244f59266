"""The central server's inventory of monitored hosts, and what polling stored from them."""

from __future__ import annotations

import contextlib
import ipaddress
import json
from datetime import date, timedelta
from urllib.parse import urlsplit

from django.core.validators import RegexValidator
from django.db import connections, models
from django.utils import timezone

from collector.contract import MAX_ADDRESS_LENGTH, MAX_USER_LENGTH
from collector.models import AddressCounts, CountsQuerySet, DayCounts, as_json, json_rows, moment_adapter

from . import rollup

# Rows per query when reading by address: well under SQLite's variable limit.
KEY_CHUNK = 500
# Rows per statement when updating fleet rows by id on PostgreSQL (FleetAddressQuerySet).
UPDATE_CHUNK = 5_000

# A host's state after its last poll: ok; stale when its agent answered but is not following its
# logs (the counts are getting old); down when the poll failed (unreachable, timed out, refused,
# or an answer that failed validation: last_error says which).
OK = "ok"
STALE = "stale"
DOWN = "down"
NEVER_POLLED = "never polled"
# The agent answers but has no sshd log it can read (none exists, or its user may not read it):
# its zeros mean nothing, and last_error says why.
NO_SOURCE = "no log source"
# Another entry of the inventory polls the same agent and counts it (duplicate_of; last_error
# says how they were found to be one): this one stores nothing and is in no total.
DUPLICATE = "duplicate"
STATES = [
    (OK, "ok"),
    (STALE, "stale"),
    (DOWN, "down"),
    (NO_SOURCE, "no log source"),
    (DUPLICATE, "duplicate"),
    (NEVER_POLLED, "never polled"),
]
DEFAULT_PORTS = {"http": 80, "https": 443}

host_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", "Use letters, digits, '.', '_' and '-' (a host name)."
)


def normalised_url(url: str) -> str:
    """The agent a URL reaches, spelled one way: scheme and host in lower case (an IP address in
    its short form, no trailing dot), no default port, user name or trailing slash. The path
    stays as it is (an agent behind a proxy lives under its prefix)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    with contextlib.suppress(ValueError):  # a name, not an address: kept as it is
        host = str(ipaddress.ip_address(host))
    try:
        port = parts.port
    except ValueError:  # not a number: kept as written, so that it matches only itself
        port = parts.netloc.rsplit(":", 1)[-1]
    netloc = f"[{host}]" if ":" in host else host
    if port and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


class HostQuerySet(models.QuerySet):
    def enabled(self) -> HostQuerySet:
        return self.filter(enabled=True)

    def with_tag(self, tag: str) -> HostQuerySet:
        # Tags are stored as ",a,b," so that one tag matches exactly, not as a substring.
        return self.filter(tags__contains=f",{tag},")


class Host(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[host_name_validator])
    url = models.URLField(
        max_length=300, help_text="The agent's base URL, e.g. https://web1.example.com:8001"
    )
    token = models.CharField(max_length=300, help_text="The agent's ALPHA_AGENT_TOKEN.")
    enabled = models.BooleanField(default=True)
    tags = models.CharField(max_length=300, blank=True, default="", help_text="Comma-separated.")
    notes = models.TextField(blank=True, default="")
    verify_tls = models.BooleanField(default=True, help_text="Check the agent's TLS certificate.")
    ca_bundle = models.CharField(
        max_length=300, blank=True, default="", help_text="CA bundle path for this agent."
    )

    # Kept by polling.
    state = models.CharField(max_length=20, choices=STATES, default=NEVER_POLLED)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    agent_version = models.CharField(max_length=40, blank=True, default="")
    unread_bytes = models.BigIntegerField(null=True, blank=True)
    # From the agent's health, summed over its log sources.
    malformed_lines = models.BigIntegerField(null=True, blank=True)
    unknown_last_24h = models.BigIntegerField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    # Days up to and including this one are stored complete (not today's, still growing).
    polled_through = models.DateField(null=True, blank=True)
    # Set while a poll of this host runs: a conditional UPDATE claims it (see polling.claim).
    polling_since = models.DateTimeField(null=True, blank=True)
    # Who the agent is, to count it once however many entries reach it (polling.identify): its
    # URL as normalised_url spells it, kept by save(); the host name its agent reports (lower
    # case; none from agents that do not say it), and since when, counted, this entry has.
    agent_url = models.CharField(max_length=400, blank=True, default="", editable=False)
    agent_host = models.CharField(max_length=255, blank=True, default="", editable=False)
    agent_host_since = models.DateTimeField(null=True, blank=True, editable=False)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates", editable=False
    )

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["state"], name="host_state"),  # admin filter, fleet pages
            # Used by every poll (and the admin's form) to find other entries of the same agent.
            models.Index(fields=["agent_url"], name="host_agent_url"),
            models.Index(fields=["agent_host"], name="host_agent_host"),
        ]
        # Reading the fleet never makes the server talk to agents; fetching a day live does.
        permissions = [("refresh_day", "Can fetch a day live from every agent")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.tags = ",".join(self.tag_list()).join(",,") if self.tag_list() else ""
        self.agent_url = normalised_url(self.url)
        fields = kwargs.get("update_fields")
        if fields is not None and "url" in fields:
            kwargs["update_fields"] = [*fields, "agent_url"]
        super().save(*args, **kwargs)

    def tag_list(self) -> list[str]:
        return sorted({t.strip() for t in self.tags.split(",") if t.strip()})

    def masked_token(self) -> str:
        """Enough of the token to tell two apart, never the whole."""
        return f"{self.token[:4]}…" if len(self.token) > 8 else "…"


class HostDay(DayCounts):
    """One host's counts on one day as its agent last reported them (replaced, never added to)."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="days")
    day = models.DateField()
    unique_sources = models.BigIntegerField(default=0)
    # How many of the day's sources are stored here (HostSource rows): fewer than unique_sources
    # once retention pruned them (here or on the agent), or while only the counts were fetched
    # (a live refresh). A distinct count over stored sources is then only a lower bound.
    stored_sources = models.BigIntegerField(default=0)
    # The agent's ten busiest user names of the day: [{user, sessions, failed_attempts, accepted}].
    top_users = models.JSONField(default=list)
    polled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "day"], name="hostday_host_day")]
        # Fleet views aggregate one day (or range) over all hosts.
        indexes = [models.Index(fields=["day"], name="hostday_day")]

    def is_stale(self, interval_seconds: int) -> bool:
        return timezone.now() - self.polled_at > timedelta(seconds=3 * interval_seconds)


class HostSourceQuerySet(CountsQuerySet):
    def addresses(self) -> HostSourceQuerySet:
        """The rows whose source is an IP address: what a count of distinct addresses counts (a
        source sshd wrote as a name says nothing of the address it stood for)."""
        return self.filter(is_address=True, sessions__gt=0)

    # The columns polling writes, in the order of the tuples from db_rows().
    COLUMNS = ("host_id", "day", "ip", "is_address", "sessions", "failed_attempts", "accepted", "users",
               "first_seen", "last_seen", "first_failed", "last_failed", "first_accepted")  # fmt: skip

    def db_rows(self, host_id: int, day: date, sources: list[dict]) -> list[tuple]:
        """Checked source rows (polling's answers.source) as database values for replace_day(),
        built before its transaction so that SQLite's write lock is held only to write them."""
        ops = connections[self.db].ops
        stored_day = ops.adapt_datefield_value(day)
        moment = moment_adapter(connections[self.db])
        return [
            (
                host_id,
                stored_day,
                s["ip"],
                s["is_address"],
                s["sessions"],
                s["failed_attempts"],
                s["accepted"],
                json.dumps(s["users"]),
                moment(s["first_seen"]),
                moment(s["last_seen"]),
                moment(s["first_failed"]),
                moment(s["last_failed"]),
                moment(s["first_accepted"]),
            )  # fmt: skip
            for s in sources
        ]

    # What the fleet's rows (FleetAddressQuerySet.change) follow, in rollup.py's order.
    ROLLUP = (
        "ip",
        "is_address",
        "sessions",
        "failed_attempts",
        "accepted",
        "users",
        "first_seen",
        "last_seen",
    )

    def rollup_rows(self, host_id: int, day: date) -> dict[str, tuple]:
        """The host's stored sources of the day as FleetAddressQuerySet.change() takes them, by address."""
        return {row[0]: row for row in self.filter(host_id=host_id, day=day).values_list(*self.ROLLUP)}

    def rollup_of(self, sources: list[dict]) -> dict[str, tuple]:
        """Checked source rows (polling's answers.source) as change() takes them, by address."""
        return {source["ip"]: tuple(source[name] for name in self.ROLLUP) for source in sources}

    def replace_day(self, host_id: int, day: date, rows: list[tuple]) -> None:
        """Replace one host's sources of one day by `rows` (from db_rows), inside the caller's
        transaction.

        Polling writes about 600 rows per host and day, 500,000 in a first round over 1,000 hosts.
        bulk_create() spent 45 us per row building model instances and quoting every value in
        Python, most of a round's CPU; this goes through Django's connection all the same, with
        COPY on PostgreSQL and one executemany on SQLite (0.1 to 0.2 of the time). The rows were
        validated field by field (inventory_app/answers.py) and travel as parameters, never as
        SQL text."""
        connection = connections[self.db]
        quote = connection.ops.quote_name
        table = quote(self.model._meta.db_table)
        columns = ", ".join(quote(c) for c in self.COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {quote('host_id')} = %s AND {quote('day')} = %s",
                [host_id, connection.ops.adapt_datefield_value(day)],
            )
            if not rows:
                return
            if connection.vendor == "postgresql":
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                placeholders = ", ".join(["%s"] * len(self.COLUMNS))
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)


class HostSource(AddressCounts):
    """A source address seen by one host on one day."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="sources")
    day = models.DateField()
    # False for a source sshd wrote as a name (UseDNS, "UNKNOWN"): listed with the sources, never
    # counted as an address (fleet.distinct_addresses). Decided at polling (answers.address).
    is_address = models.BooleanField(default=True, db_default=True)

    objects = HostSourceQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "day", "ip"], name="hostsource_host_day_ip")]
        # The fleet's attackers of a day (group by ip over hosts), and its distinct addresses,
        # read from this index alone.
        indexes = [models.Index(fields=["day", "ip", "is_address"], name="hostsource_day_ip_address")]


def adding_upsert(
    connection,
    model,
    key: tuple[str, ...],
    sums: tuple[str, ...],
    rest: tuple[str, ...] = (),
    replace_rest: bool = False,
) -> str:
    """An INSERT of (*key, is_address, *sums, *rest) that, where a row with that key exists,
    adds the sums to it instead (and sets the rest, with `replace_rest`); `{}` stands for the
    VALUES or SELECT of the rows."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(c) for c in (*key, "is_address", *sums, *rest))
    assigned = [f"{quote(c)} = excluded.{quote(c)}" for c in ("is_address", *(rest if replace_rest else ()))]
    assigned += [f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in sums]
    return (
        f"INSERT INTO {table} ({columns}) {{}} ON CONFLICT ({', '.join(quote(c) for c in key)}) "
        f"DO UPDATE SET {', '.join(assigned)}"
    )


class FleetAddressQuerySet(models.QuerySet):
    """The fleet's addresses per day, kept by polling in the transaction that writes a host's
    sources (HostSource), so that fleet views read one row per address and day instead of one
    per host, address and day (about a third as many rows at 1,000 hosts: the same botnets hit
    every host), and a page of addresses reads its hosts, users and times from those rows too.

    The counts are sums kept by differences, added under the row's lock by one upsert per host's
    day in (day, address) order, so concurrent writers lock rows in one order and never
    deadlock; the rest follows the host's change as rollup.changed() says, read and written
    while the rows are locked. Exact whatever order hosts are written in; a row whose hosts fall
    to zero is deleted."""

    SUMS = ("hosts", "sessions", "failed_attempts", "accepted")
    # What follows rollup.changed(), in its order, and its value before any host.
    DETAIL = ("host_bits", "users", "first_seen", "last_seen")
    NO_DETAIL = (b"", {}, None, None)

    def addresses(self) -> FleetAddressQuerySet:
        """As HostSourceQuerySet.addresses: an address with a connection that day. A day's row
        has sessions when some host's row of it has them."""
        return self.filter(is_address=True, sessions__gt=0)

    def change(self, host_id: int, changes: list[tuple[date, tuple | None, tuple | None]]) -> None:
        """Follow one host's rows going from old to new (rollup rows: HostSourceQuerySet.ROLLUP;
        None where it has none), inside the caller's transaction, once HostSource holds the new
        ones."""
        changes = [(day, old, new) for day, old, new in changes if old != new]
        if not changes:
            return
        changes.sort(key=lambda change: (change[0], (change[1] or change[2])[rollup.IP]))
        by_key = {(day, (old or new)[rollup.IP]): (old, new) for day, old, new in changes}
        if connections[self.db].vendor != "postgresql":
            self._change_alone(host_id, changes, by_key)
            return
        # The rows that held other hosts already, by (day, ip): their id and detail as stored.
        stored = self._add_counts(host_id, changes)
        updates: list[tuple] = []
        lost: dict[date, list[tuple[int, str]]] = {}
        gone: list[int] = []
        for (day, ip), (pk, detail) in stored.items():
            after, lost_time = rollup.changed(detail, host_id, *by_key[(day, ip)])
            if not after[0]:
                gone.append(pk)  # no host left: deleted, nothing to write or read again
                continue
            updates.append((pk, *after))
            if lost_time:
                lost.setdefault(day, []).append((pk, ip))
        self._write_details(updates)
        self._settle(lost, gone)

    def _change_alone(self, host_id: int, changes: list[tuple], by_key: dict) -> None:
        """change() on SQLite: the rows are read first, then each is written once, whole. Safe
        because the caller's atomic() began with BEGIN IMMEDIATE (settings: transaction_mode), so
        its transaction holds the database's one write lock, across processes, from its start.

        Before, the differences were written with an empty detail, every row read back and its
        detail written again (an executemany cannot return rows): a first round over 1,000 hosts
        took 5-12 % longer (bench/README.md, "What a first round costs, part by part")."""
        stored = self._stored_details(by_key)
        empty = (None, self.NO_DETAIL)
        deltas = self._deltas(changes)
        connection = connections[self.db]
        day_value, moment = connection.ops.adapt_datefield_value, moment_adapter(connection)
        values, lost, gone = [], {}, []
        for (day, old, new), delta in zip(changes, deltas):
            ip = delta[1]
            pk, detail = stored.get((day, ip), empty)
            (bits, users, first, last), lost_time = rollup.changed(detail, host_id, old, new)
            if not bits:  # no host left: deleted below (a row that is not there stays away)
                if pk is not None:
                    gone.append(pk)
                    values.append((day_value(day), *delta[1:], bits, "{}", None, None))
                continue
            if lost_time:
                lost.setdefault(day, []).append((pk, ip))
            values.append((day_value(day), *delta[1:], bits, json.dumps(users), moment(first), moment(last)))
        upsert = adding_upsert(
            connection, self.model, ("day", "ip"), self.SUMS, self.DETAIL, replace_rest=True
        )
        with connection.cursor() as cursor:
            cursor.executemany(upsert.format("VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"), values)
        FleetAddressTotal.objects.using(self.db).add(deltas)
        self._settle(lost, gone)

    def _settle(self, lost: dict[date, list[tuple[int, str]]], gone: list[int]) -> None:
        """Read again the times the host held and no longer does (lost), and delete the rows
        with no host left (gone), once their counts are written."""
        self._write_times(self._times_again(lost))
        for start in range(0, len(gone), KEY_CHUNK):
            self.filter(pk__in=gone[start : start + KEY_CHUNK], hosts__lte=0).delete()

    def _stored_details(self, by_key: dict) -> dict[tuple, tuple]:
        """The rows' ids and details, by (day, ip), as stored (SQLite)."""
        by_day: dict[date, list[str]] = {}
        for day, ip in by_key:
            by_day.setdefault(day, []).append(ip)
        stored = {}
        for day, ips in by_day.items():
            for start in range(0, len(ips), KEY_CHUNK):
                rows = self.filter(day=day, ip__in=ips[start : start + KEY_CHUNK]).values_list(
                    "pk", "ip", *self.DETAIL
                )
                stored.update({(day, ip): (pk, tuple(detail)) for pk, ip, *detail in rows})
        return stored

    def _times_again(self, lost: dict[date, list[tuple[int, str]]]) -> list[tuple]:
        """The host held the first or last time and no longer does: read them again from the
        hosts' rows (when a day is replaced with its addresses kept), one query per chunk."""
        times = []
        for day, rows in lost.items():
            ids = {ip: pk for pk, ip in rows}
            ips = list(ids)
            for start in range(0, len(ips), KEY_CHUNK):
                found = (
                    HostSource.objects.filter(day=day, ip__in=ips[start : start + KEY_CHUNK])
                    .values("ip")
                    .annotate(first=models.Min("first_seen"), last=models.Max("last_seen"))
                    .values_list("ip", "first", "last")
                )
                times += [(ids[ip], first, last) for ip, first, last in found]
        return times

    def _add_counts(self, host_id: int, changes: list[tuple]) -> dict[tuple, tuple]:
        """Add the changes' differences to the counts, creating rows where needed: one upsert,
        which also locks every row the change touches, in (day, address) order (PostgreSQL).

        A new row is written whole (its only host's detail) and the upsert returns the rows that
        were there already, with their detail; most of a host's addresses are its own, so most
        rows are written once and none is read again. Reading them back by (day, ip) after the
        upsert was a scan of the whole day on a first round (before any ANALYZE), and writing
        each twice left a dead row version per address."""
        deltas = self._deltas(changes)
        stored = self._upsert(host_id, changes, deltas)
        # After the day rows, as every writer does: day rows are locked first, then totals, each
        # in key order, so concurrent writers never deadlock.
        FleetAddressTotal.objects.using(self.db).add(deltas)
        return stored

    @staticmethod
    def _deltas(changes: list[tuple]) -> list[tuple]:
        """Each change as (day, ip, is_address, hosts, *counts) differences."""
        deltas = []
        for day, old, new in changes:
            row = new or old
            sign = (new is not None) - (old is not None)
            counts = [(b if new else 0) - (a if old else 0)
                      for a, b in zip((old or row)[rollup.COUNTS], (new or row)[rollup.COUNTS])]  # fmt: skip
            deltas.append((day, row[rollup.IP], row[rollup.IS_ADDRESS], sign, *counts))
        return deltas

    def _upsert(self, host_id: int, changes: list[tuple], deltas: list[tuple]) -> dict[tuple, tuple]:
        connection = connections[self.db]
        upsert = adding_upsert(connection, self.model, ("day", "ip"), self.SUMS, self.DETAIL)
        with connection.cursor() as cursor:
            details = [rollup.changed(self.NO_DETAIL, host_id, old, new)[0] for _, old, new in changes]
            values = [(day.isoformat(), *delta, bits.hex(), json.dumps(users), first, last)
                      for (day, *delta), (bits, users, first, last) in zip(deltas, details)]  # fmt: skip
            # One statement for them all (an executemany is a round trip per row), which returns
            # only the rows that were there already: the others were written whole.
            types = ("date", "text", "boolean", "bigint", "bigint", "bigint", "bigint", "bytea", "jsonb",
                     "timestamptz", "timestamptz")  # fmt: skip
            cursor.execute(
                "WITH d (day, ip, is_address, hosts, sessions, failed, accepted, bits, users, "
                f"first_seen, last_seen) AS ({json_rows(types)}), "
                f"u AS ({upsert.format('SELECT * FROM d ORDER BY 1, 2')} "
                "RETURNING id, day, ip, hosts, host_bits, users::text, first_seen, last_seen) "
                "SELECT u.id, u.day, u.ip, u.host_bits, u.users, u.first_seen, u.last_seen "
                "FROM u JOIN d ON d.day = u.day AND d.ip = u.ip WHERE NOT (d.hosts = 1 AND u.hosts = 1)",
                [as_json(values)],
            )
            return {
                (day, ip): (pk, (bits, json.loads(users), first, last))
                for pk, day, ip, bits, users, first, last in cursor.fetchall()
            }

    def _write_details(self, updates: list[tuple]) -> None:
        moment = moment_adapter(connections[self.db])
        self._update_by_id(
            {"host_bits": "bytea", "users": "jsonb", "first_seen": "timestamptz", "last_seen": "timestamptz"},
            [
                (pk, bits, json.dumps(users), moment(first), moment(last))
                for pk, bits, users, first, last in updates
            ],
        )

    def _write_times(self, times: list[tuple]) -> None:
        moment = moment_adapter(connections[self.db])
        self._update_by_id(
            {"first_seen": "timestamptz", "last_seen": "timestamptz"},
            [(pk, moment(first), moment(last)) for pk, first, last in times],
        )

    def _update_by_id(self, columns: dict[str, str], rows: list[tuple]) -> None:
        """Set `columns` (name: PostgreSQL type; jsonb travels as text) of the rows given as
        (id, *values): one statement on PostgreSQL, one executemany on SQLite."""
        if not rows:
            return
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        if connection.vendor == "postgresql" and len(rows) > UPDATE_CHUNK:
            # A jsonb value holds at most 256 MB, and these rows carry the fleet's user names (a
            # host deleted with 90 days of sources updates a row for each of them).
            for start in range(0, len(rows), UPDATE_CHUNK):
                self._update_by_id(columns, rows[start : start + UPDATE_CHUNK])
            return
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                kinds = ("bigint", *columns.values())
                if "bytea" in kinds:  # as hex, as as_json() takes bytes
                    rows = [
                        tuple(bytes(v).hex() if k == "bytea" else v for k, v in zip(kinds, row))
                        for row in rows
                    ]
                assigned = ", ".join(f"{name} = u.{name}" for name in columns)
                cursor.execute(
                    f"UPDATE {table} AS f SET {assigned} FROM ({json_rows(kinds)}) "
                    f"AS u(id, {', '.join(columns)}) WHERE f.id = u.id",
                    [as_json(rows)],
                )
            else:
                assigned = ", ".join(f"{name} = %s" for name in columns)
                cursor.executemany(
                    f"UPDATE {table} SET {assigned} WHERE id = %s", [(*row[1:], row[0]) for row in rows]
                )

    def remove_days(self, before: date) -> int:
        """Delete the fleet's rows of the days before `before` and take them out of the totals,
        inside the caller's transaction. Returns the rows deleted."""
        connection = connections[self.db]
        quote = connection.ops.quote_name
        sums = ", ".join(quote(c) for c in self.SUMS)
        with connection.cursor() as cursor:
            # The rows as deleted, not as read before: nothing written between is lost.
            cursor.execute(
                f"DELETE FROM {quote(self.model._meta.db_table)} WHERE {quote('day')} < %s "
                f"RETURNING {quote('ip')}, {quote('is_address')}, {sums}",
                [connection.ops.adapt_datefield_value(before)],
            )
            gone = cursor.fetchall()
        FleetAddressTotal.objects.using(self.db).add(
            [(None, ip, bool(is_address), *(-value for value in values)) for ip, is_address, *values in gone]
        )
        return len(gone)

    def remove_host(self, host_id: int, days: list[date] | None = None) -> None:
        """Delete the host's stored sources (of `days`, or all) and take them out of the rollup,
        inside the caller's transaction."""
        sources = HostSource.objects.filter(host_id=host_id)
        if days is not None:
            sources = sources.filter(day__in=days)
        old = list(sources.values_list("day", *HostSourceQuerySet.ROLLUP))
        sources.delete()
        self.change(host_id, [(day, tuple(row), None) for day, *row in old])


class FleetAddress(models.Model):
    """One address on one day over the whole fleet: its hosts' rows (HostSource) summed, the
    hosts as a bit set (bit n for the host of id n), the user names tried with how many hosts
    list each, first and last seen (FleetAddressQuerySet says how they are kept exact)."""

    day = models.DateField()
    ip = models.CharField(max_length=MAX_ADDRESS_LENGTH)
    is_address = models.BooleanField(default=True)
    hosts = models.BigIntegerField(default=0)
    sessions = models.BigIntegerField(default=0)
    failed_attempts = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    host_bits = models.BinaryField(default=b"")
    users = models.JSONField(default=dict)
    first_seen = models.DateTimeField(null=True)
    last_seen = models.DateTimeField(null=True)

    objects = FleetAddressQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "ip"], name="fleetaddress_day_ip")]
        # The fleet's distinct addresses over a range (fleet.distinct_addresses) read from this
        # index alone, not from the rows with their users and host bits.
        indexes = [
            models.Index(
                fields=["day", "ip", "is_address", "sessions"],
                condition=models.Q(is_address=True, sessions__gt=0),
                name="fleetaddress_counted",
            )
        ]


class FleetAddressTotalQuerySet(models.QuerySet):
    """The fleet's addresses over every stored day: FleetAddress's sums added up per address,
    kept by the same differences in the same transaction. Ranking a long range (90 days, the
    detail window) then reads a row per address instead of one per address and day (a fifth as
    many at 1,000 hosts), less the few stored days outside the range (fleet.py)."""

    # FleetAddressQuerySet.SUMS added up, in its order: its hosts become host days.
    SUMS = ("host_days", "sessions", "failed_attempts", "accepted")

    def add(self, deltas: list[tuple]) -> None:
        """Add FleetAddressQuerySet's differences, (day, ip, is_address, hosts, *counts), in one
        upsert locking the rows in address order; a row left with no host day is deleted."""
        by_ip: dict[str, list] = {}
        for _, ip, is_address, *sums in deltas:
            row = by_ip.setdefault(ip, [is_address, *(0 for _ in self.SUMS)])
            for i, value in enumerate(sums, 1):
                row[i] += value
        rows = sorted((ip, *row) for ip, row in by_ip.items() if any(row[1:]))
        if not rows:
            return
        connection = connections[self.db]
        upsert = adding_upsert(connection, self.model, ("ip",), self.SUMS)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                types = ("text", "boolean", "bigint", "bigint", "bigint", "bigint")
                cursor.execute(upsert.format(f"{json_rows(types)} ORDER BY 1"), [as_json(rows)])
            else:
                cursor.executemany(upsert.format("VALUES (%s, %s, %s, %s, %s, %s)"), rows)
        fewer = [row[0] for row in rows if row[2] < 0]
        for start in range(0, len(fewer), KEY_CHUNK):
            self.filter(ip__in=fewer[start : start + KEY_CHUNK], host_days__lte=0).delete()


class FleetAddressTotal(models.Model):
    """One address over every day the fleet's rows (FleetAddress) hold: their sums added up,
    host_days being their hosts summed (the hosts that saw it, once per day)."""

    ip = models.CharField(max_length=MAX_ADDRESS_LENGTH, unique=True)
    is_address = models.BooleanField(default=True)
    host_days = models.BigIntegerField(default=0)
    sessions = models.BigIntegerField(default=0)
    failed_attempts = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)

    objects = FleetAddressTotalQuerySet.as_manager()


def forget_deleted_host(sender, instance: Host, **kwargs) -> None:
    """pre_delete of a Host (connected in apps.py): its sources, about to go with it (CASCADE),
    leave the fleet's sums first, in the deletion's transaction."""
    FleetAddress.objects.using(kwargs.get("using") or "default").remove_host(instance.pk)


class HostLogin(models.Model):
    """A login (accepted connection) one host's agent reported, replaced with its day. The user
    name is attacker-controlled text."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="logins")
    day = models.DateField()
    at = models.DateTimeField()
    user = models.CharField(max_length=MAX_USER_LENGTH)
    ip = models.CharField(max_length=MAX_ADDRESS_LENGTH)
    port = models.PositiveIntegerField(null=True, blank=True)
    method = models.CharField(max_length=64)
    key = models.CharField(max_length=160, blank=True, default="")
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            # The fleet's logins of a day, and a host's.
            models.Index(fields=["day", "at"], name="hostlogin_day_at"),
            models.Index(fields=["host", "day"], name="hostlogin_host_day"),
            # Rules: an address's and a user's logins over time.
            models.Index(fields=["ip", "at"], name="hostlogin_ip_at"),
            models.Index(fields=["user", "at"], name="hostlogin_user_at"),
        ]

    def __str__(self) -> str:
        return f"{self.user}@{self.host_id} from {self.ip} at {self.at:%Y-%m-%d %H:%M:%S}"

    def duration(self) -> str:
        """How long the connection lasted, as h:mm:ss (whole seconds, as sshd logs them); "" while it
        is open or its end was not logged."""
        if self.ended_at is None:
            return ""
        return str(timedelta(seconds=max(int((self.ended_at - self.at).total_seconds()), 0)))
