"""What the agent stores: per-day counts, and where it is in each log source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connections, models
from django.utils import timezone

from .contract import IPV4_CHARS, MAX_ADDRESS_LENGTH, MAX_USER_LENGTH, MAX_USERS_PER_SOURCE, TALLIED

FILE = "file"
JOURNAL = "journal"
SOURCE_KINDS = [(FILE, "file"), (JOURNAL, "journal")]


class AgentState(models.Model):
    """One row: the connection tracker's state but its open connections (sessions.Tracker.state;
    the connections are OpenConnection rows), saved with every batch.

    `generation` goes up with every commit; a writer that finds it moved since it loaded the
    state knows another agent wrote in between and stops instead of double counting."""

    tracker = models.JSONField(default=dict)
    generation = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)
    # Written by a following agent at least every HEARTBEAT seconds, also while the log is quiet,
    # so the API can tell a quiet host from a stopped agent.
    heartbeat_at = models.DateTimeField(null=True)
    # Why watch_authlog has no log to follow (nothing readable), in one sentence; "" when it has.
    source_problem = models.TextField(blank=True, default="")
    # The LogSource ids the latest watch_authlog follows (a live file per path, or the journal):
    # health and metrics list these, not files rotated away nor sources of an earlier run.
    followed = models.JSONField(default=list)

    HEARTBEAT = 60


class OpenConnectionQuerySet(models.QuerySet):
    def as_tracker_state(self) -> dict[str, list]:
        """Every open connection as sessions.Tracker takes them: key -> its state."""
        return dict(self.values_list("key", "state"))

    def save_changes(self, changed: dict[str, list], removed: set[str]) -> None:
        """Write what Tracker.take_changes() returned. The caller holds the write lock."""
        connection = connections[self.db]
        quote = connection.ops.quote_name
        where = f"DELETE FROM {quote(self.model._meta.db_table)} WHERE {quote('key')}"
        if removed:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    # As one JSON text, not an array: see upsert().
                    cursor.execute(
                        f"{where} IN (SELECT jsonb_array_elements_text(%s::jsonb))",
                        [json.dumps(sorted(removed))],
                    )
                else:
                    cursor.executemany(f"{where} = %s", [(key,) for key in sorted(removed)])
        upsert(
            self.model,
            ("key",),
            ("state",),
            [(key, json.dumps(state)) for key, state in changed.items()],
            using=self.db,
        )


class OpenConnection(models.Model):
    """One process the connection tracker remembers (sessions.Conn), a row each so that a commit
    writes only the connections its batch changed. Saved in the same transaction as the counts
    and read positions; all read back when the agent starts."""

    key = models.TextField(unique=True)  # boot|host|pid, as sessions.Tracker keys it
    state = models.JSONField()  # sessions.Conn.to_list()

    objects = OpenConnectionQuerySet.as_manager()

    def __str__(self) -> str:
        return self.key


def upsert(
    model: type[models.Model],
    key: tuple[str, ...],
    columns: tuple[str, ...],
    rows: list[tuple],
    *,
    add: tuple[str, ...] = (),
    using: str = "default",
) -> None:
    """Insert `rows` (tuples of key then columns: days as ISO text, times as UTC datetimes, JSON as
    text) into model's table, or where a row with that key exists set its columns instead, adding
    to those in `add`.

    A commit of a bulk read writes thousands of source, user and connection rows. bulk_create()
    spent most of a commit building model instances and adapting values one by one; this is one
    statement on PostgreSQL (the rows as one JSON text) and one executemany on SQLite, through Django's
    connection, the values travelling as parameters."""
    if not rows:
        return
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = (*key, *columns)
    assigned = ", ".join(
        f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}"
        if c in add
        else f"{quote(c)} = excluded.{quote(c)}"
        for c in columns
    )
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in names)}) {{}} "
        f"ON CONFLICT ({', '.join(quote(c) for c in key)}) DO UPDATE SET {assigned}"
    )
    fields = [model._meta.get_field(name) for name in names]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql.format(json_rows([f.db_type(connection) for f in fields])), [as_json(rows)])
        else:
            times = [i for i, f in enumerate(fields) if f.get_internal_type() == "DateTimeField"]
            if times:
                adapt = moment_adapter(connection)
                rows = [list(row) for row in rows]
                for row in rows:
                    for i in times:
                        row[i] = adapt(row[i])
            cursor.executemany(sql.format(f"VALUES ({', '.join(['%s'] * len(names))})"), rows)


def json_rows(types: Iterable[str]) -> str:
    """A PostgreSQL SELECT of rows that travel as one parameter, a JSON text (as_json() of a list of
    tuples), value i cast to types[i] (JSON travels as its text, bytes as hex).

    Django's psycopg binds parameters client-side: rows sent as arrays had each element quoted in
    Python, which was most of the time of an agent's commit and a third of a polling round's
    CPU; json.dumps is C and the server takes the text apart."""
    selected = ", ".join(
        f"decode(r->>{i}, 'hex')" if kind == "bytea" else f"(r->>{i})::{kind}" for i, kind in enumerate(types)
    )
    return f"SELECT {selected} FROM jsonb_array_elements(%s::jsonb) AS r"


def as_json(rows: list) -> str:
    """Rows as json_rows() takes them, given with their days as ISO text and bytes as hex
    already; times (datetimes) become ISO text here, in C (a Python callback for each would
    cost an agent's commit and a polling round a call per time)."""
    return json.dumps(rows, default=datetime.isoformat)


def moment_adapter(connection) -> Callable[[datetime | None], datetime | str | None]:
    """Django's adapt_datetimefield_value for the connection, with a shortcut for SQLite in UTC
    (how Django stores times there: naive UTC text): the same text in a fifth of the time. The
    central server's first polling round adapts some 700,000 times (about 10 ms of CPU per host
    and day), an agent's commit every source's times (upsert)."""
    if connection.vendor != "sqlite" or not settings.USE_TZ or connection.timezone_name != "UTC":
        return connection.ops.adapt_datetimefield_value

    def adapt(value: datetime | None) -> str | None:
        if value is None or value.tzinfo is None:
            return connection.ops.adapt_datetimefield_value(value)
        return str(value.astimezone(UTC).replace(tzinfo=None))

    return adapt


class LogSource(models.Model):
    """One log file (by identity, not by name: it keeps its row when rotated or compressed) or
    the journal, with the position read up to. The position is saved in the same transaction as
    the counts of the lines before it."""

    kind = models.CharField(max_length=10, choices=SOURCE_KINDS, default=FILE)
    path = models.TextField()
    device = models.BigIntegerField(null=True)
    inode = models.BigIntegerField(null=True)
    # sha256 of the first `fingerprint_size` bytes (decompressed): recognises the file after a
    # rename or gzip, and tells a truncated-and-rewritten file from the one we read.
    fingerprint = models.CharField(max_length=64, blank=True)
    fingerprint_size = models.PositiveIntegerField(default=0)
    offset = models.BigIntegerField(default=0)
    size = models.BigIntegerField(default=0)
    cursor = models.TextField(blank=True)
    lines_read = models.BigIntegerField(default=0)
    malformed_lines = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    last_read_at = models.DateTimeField(null=True)
    last_event_at = models.DateTimeField(null=True)
    # Set when the file was rotated away and read to its end, or replaced by truncation.
    finished = models.BooleanField(default=False)
    # {hour (epoch // 3600): unknown sshd messages}, the last 25 hours, for the health endpoint.
    unknown_hours = models.JSONField(default=dict)

    class Meta:
        indexes = [
            # Used by tailing when it opens a file: which row is this (device, inode)?
            models.Index(fields=["device", "inode"], name="logsource_identity"),
            # Used to recognise a rotated or compressed copy of a file already read.
            models.Index(fields=["fingerprint"], name="logsource_fingerprint"),
        ]

    def __str__(self) -> str:
        return f"{self.path} @ {self.offset}"

    def add_unknown_hours(self, hours: dict[int, int], now_hour: int) -> None:
        merged = {int(h): n for h, n in self.unknown_hours.items()}
        for hour, count in hours.items():
            merged[hour] = merged.get(hour, 0) + count
        self.unknown_hours = {str(h): n for h, n in merged.items() if h > now_hour - 25}

    def unknown_last_24h(self, now_hour: int) -> int:
        return sum(n for h, n in self.unknown_hours.items() if int(h) > now_hour - 24)


class CountsQuerySet(models.QuerySet):
    def for_range(self, since: date | None = None, until: date | None = None) -> CountsQuerySet:
        """Rows of days from `since` through `until` (either open), in date order."""
        qs = self
        if since is not None:
            qs = qs.filter(day__gte=since)
        if until is not None:
            qs = qs.filter(day__lte=until)
        return qs.order_by("day")

    def addresses(self) -> CountsQuerySet:
        """Source rows that count towards unique_sources: an address (contract.is_address, in
        SQL) with a connection that day; not a host name, nor an address only refused by the
        listener."""
        digits_and_dots = models.Func(models.F("ip"), models.Value(IPV4_CHARS), function="LTRIM")
        return self.alias(rest=digits_and_dots).filter(
            models.Q(ip__contains=":") | (models.Q(rest="") & ~models.Q(ip="")), sessions__gt=0
        )


class DayCounts(models.Model):
    """A day's tallied counts (collector.contract.COUNTS but unique_sources), kept by the agent
    (DailyCount) and stored from it by the central server (inventory_app.HostDay)."""

    sessions = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    failed_attempts = models.BigIntegerField(default=0)
    failed_sessions = models.BigIntegerField(default=0)
    invalid_user_sessions = models.BigIntegerField(default=0)
    preauth_only = models.BigIntegerField(default=0)

    objects = CountsQuerySet.as_manager()

    class Meta:
        abstract = True

    def as_dict(self, unique_sources: int | None = None) -> dict:
        """The day as the agent API sends it: date, then the contract's counts in order."""
        row = {"date": self.day.isoformat()}
        row.update({name: getattr(self, name) for name in TALLIED})
        row["unique_sources"] = self.unique_sources if unique_sources is None else unique_sources
        return row


class AddressCounts(models.Model):
    """One source address on one day: its counts, the user names it tried (attacker text, at most
    MAX_USERS_PER_SOURCE) and when it was first and last seen."""

    ip = models.CharField(max_length=MAX_ADDRESS_LENGTH)
    sessions = models.BigIntegerField(default=0)
    failed_attempts = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    users = models.JSONField(default=list)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    # When it first and last failed and first logged in that day (null: never): "logged in
    # after failing" is decided on these times, not on both happening the same day.
    first_failed = models.DateTimeField(null=True, blank=True)
    last_failed = models.DateTimeField(null=True, blank=True)
    first_accepted = models.DateTimeField(null=True, blank=True)

    objects = CountsQuerySet.as_manager()

    class Meta:
        abstract = True


class DailyCount(DayCounts):
    """The host's connections on one day (in TIME_ZONE), each counted on the day it began."""

    day = models.DateField(unique=True)
    # The day's distinct sources, kept here when its source rows were pruned (retention.py);
    # null while they are there to be counted.
    pruned_sources = models.BigIntegerField(null=True, blank=True)


class DailySource(AddressCounts):
    """Connections from one source address on one day."""

    day = models.DateField()

    MAX_USERS = MAX_USERS_PER_SOURCE

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "ip"], name="dailysource_day_ip")]
        indexes = [
            # Used by the agent API's top sources of a day.
            models.Index(fields=["day", "-sessions"], name="dailysource_day_sessions"),
        ]


class AcceptedLogin(models.Model):
    """One accepted connection (a login): when, who, from where, how, and when it ended. The
    user name is attacker-controlled text (a login with a stolen password is an attacker's)."""

    day = models.DateField()  # the day its connection began, as its counts
    at = models.DateTimeField()
    user = models.CharField(max_length=MAX_USER_LENGTH)
    ip = models.CharField(max_length=MAX_ADDRESS_LENGTH)
    port = models.PositiveIntegerField(null=True, blank=True)
    method = models.CharField(max_length=64)
    # "ED25519 SHA256:…" when sshd logs the key (publickey); "" otherwise.
    key = models.CharField(max_length=160, blank=True, default="")
    ended_at = models.DateTimeField(null=True, blank=True)
    # The sshd process it was (boot|host|pid): with `at`, what its end is matched by.
    connection = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "at"], name="acceptedlogin_connection_at")
        ]
        indexes = [models.Index(fields=["day", "at"], name="acceptedlogin_day_at")]


class DailyUser(models.Model):
    """Connections that tried one user name on one day. The name is attacker-controlled text."""

    day = models.DateField()
    user = models.CharField(max_length=MAX_USER_LENGTH)
    sessions = models.BigIntegerField(default=0)
    failed_attempts = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "user"], name="dailyuser_day_user")]
        indexes = [
            # Used by the agent API's top users of a day.
            models.Index(fields=["day", "-sessions"], name="dailyuser_day_sessions"),
        ]


class DailyEvent(models.Model):
    """sshd events of one kind on one day (repeats expanded), `unknown` included."""

    day = models.DateField()
    kind = models.CharField(max_length=40)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "kind"], name="dailyevent_day_kind")]


class UnknownSample(models.Model):
    """A few sshd messages the parser did not recognise, newest kept, to show what to teach it."""

    seen_at = models.DateTimeField()
    message = models.TextField()
    source = models.ForeignKey(LogSource, null=True, on_delete=models.CASCADE, related_name="unknown_samples")

    KEEP = 50

    class Meta:
        indexes = [models.Index(fields=["-seen_at"], name="unknownsample_recent")]
