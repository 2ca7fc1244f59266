"""Writing a batch: count deltas, read positions and open connections in one transaction."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

from django.db import connection, transaction
from django.utils import timezone

from .contract import TALLIED
from .models import (
    AcceptedLogin,
    AgentState,
    DailyCount,
    DailyEvent,
    DailySource,
    DailyUser,
    LogSource,
    OpenConnection,
    UnknownSample,
    upsert,
)
from .sessions import SESSIONS, Source, Tally, Tracker

# Rows per query when reading existing counts: well under SQLite's variable limit.
KEY_CHUNK = 500


class ConcurrentWriter(Exception):
    pass


class LostCommits(ConcurrentWriter):
    """The database went back to an earlier commit of this agent's: on PostgreSQL a batch does
    not wait for its flush (see commit), so a server crash can lose the last few. The database
    is as it was after the commit it kept, read positions included, so an agent started again
    reads on from there, exactly; this one's tracker is ahead of it and must not write."""


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class Recorder:
    """Holds the connection tracker between batches and commits what each batch changed."""

    def __init__(self) -> None:
        state, _ = AgentState.objects.get_or_create(pk=1)
        self.generation = state.generation
        self.tracker = Tracker(state.tracker, OpenConnection.objects.as_tracker_state())
        self.last_heartbeat = 0.0
        # What this process added, for watch_authlog --once's summary.
        self.connections_added = 0
        self.days_touched: set[str] = set()

    def commit(self, sources: list[LogSource]) -> Tally:
        tally = self.tracker.take_tally()
        changed, removed = self.tracker.take_changes()
        now = timezone.now()
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # The read positions commit with the counts of their lines, so a batch lost with
                # the server's last moments in a crash is read again: nothing is lost or counted
                # twice, and a batch need not wait for its flush to disk (5 % of a bulk read).
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit = off")
            state = AgentState.objects.select_for_update().get(pk=1)
            if state.generation < self.generation:
                raise LostCommits(
                    "The database no longer holds this agent's latest commits (its server restarted "
                    "without them); start the agent again: it reads on from what the database kept."
                )
            if state.generation != self.generation:
                raise ConcurrentWriter(
                    "Another watch_authlog wrote to this database since this one started; "
                    "run only one agent per database."
                )
            for source in sources:
                source.add_unknown_hours(tally.unknown_hours, int(now.timestamp() // 3600))
                source.last_read_at = now
                if tally.last_event_ts is not None:
                    event_at = _when(tally.last_event_ts)
                    if source.last_event_at is None or event_at > source.last_event_at:
                        source.last_event_at = event_at
                source.save()
            add_tally(tally, sources[0] if sources else None)
            OpenConnection.objects.save_changes(changed, removed)
            state.tracker = self.tracker.state()
            state.generation += 1
            state.updated_at = state.heartbeat_at = now
            state.save()
        self.generation = state.generation
        self.last_heartbeat = time.monotonic()
        self.connections_added += sum(counts[SESSIONS] for counts in tally.days.values())
        self.days_touched.update(day for day, counts in tally.days.items() if any(counts))
        return tally

    def heartbeat(self) -> None:
        """Say "still following" while nothing is committed (a quiet log)."""
        if time.monotonic() - self.last_heartbeat >= AgentState.HEARTBEAT:
            AgentState.objects.filter(pk=1).update(heartbeat_at=timezone.now())
            self.last_heartbeat = time.monotonic()


def add_tally(tally: Tally, source: LogSource | None = None) -> None:
    """Add a batch's deltas to the stored counts. The caller holds the write lock."""
    _add_days(tally.days)
    _add_sources(tally.sources)
    users = [(day, user, *delta) for (day, user), delta in tally.users.items()]
    upsert(DailyUser, ("day", "user"), USER_SUMS, users, add=USER_SUMS)
    events = [(day, kind, count) for (day, kind), count in tally.kinds.items()]
    upsert(DailyEvent, ("day", "kind"), ("count",), events, add=("count",))
    _add_logins(tally.logins, tally.login_ends)
    if tally.unknown_samples:
        UnknownSample.objects.bulk_create(
            UnknownSample(seen_at=_when(ts), message=message[:1000], source=source)
            for ts, message in tally.unknown_samples
        )
        keep = list(
            UnknownSample.objects.order_by("-seen_at", "-id").values_list("id", flat=True)[
                : UnknownSample.KEEP
            ]
        )
        UnknownSample.objects.exclude(id__in=keep).delete()


# A user's counts, in the order of Tally.users' values.
USER_SUMS = ("sessions", "failed_attempts", "accepted")
# What a source's row holds besides its key (day, ip), in the order _source_row writes them.
SOURCE_COLUMNS = ("sessions", "failed_attempts", "accepted", "first_seen", "last_seen", "users",
                  "first_failed", "last_failed", "first_accepted")  # fmt: skip
SOURCE_SUMS = SOURCE_COLUMNS[:3]


def _add_days(deltas: dict[str, list[int]]) -> None:
    if not deltas:
        return
    days = [date.fromisoformat(d) for d in deltas]
    existing = {row.day: row for row in DailyCount.objects.filter(day__in=days)}
    rows = []
    for day_text, delta in deltas.items():
        day = date.fromisoformat(day_text)
        row = existing.get(day) or DailyCount(day=day)
        for name, value in zip(TALLIED, delta):
            setattr(row, name, getattr(row, name) + value)
        rows.append(row)
    DailyCount.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["day"],
        update_fields=list(TALLIED),
    )


def _add_sources(deltas: dict[tuple[str, str], Source]) -> None:
    """Add the sources' deltas: counts are added in the upsert; times and user names are merged
    with the stored row's, read first (only the agent writes them: it holds the write lock)."""
    if not deltas:
        return
    by_day: dict[str, list[str]] = {}
    for day, ip in deltas:
        by_day.setdefault(day, []).append(ip)
    stored: dict[tuple[str, str], tuple] = {}
    for day, ips in by_day.items():
        for start in range(0, len(ips), KEY_CHUNK):
            rows = DailySource.objects.filter(day=day, ip__in=ips[start : start + KEY_CHUNK]).values_list(
                "ip", *SOURCE_COLUMNS[3:]
            )
            stored.update(((day, row[0]), row[1:]) for row in rows)
    upsert(
        DailySource,
        ("day", "ip"),
        SOURCE_COLUMNS,
        [_source_row(key, delta, stored.get(key)) for key, delta in deltas.items()],
        add=SOURCE_SUMS,
    )


def _source_row(key: tuple[str, str], delta: Source, stored: tuple | None) -> tuple:
    """The upsert's row for a source's delta (Tally.sources), merged with its stored times and
    users (first_seen, last_seen, users, first_failed, last_failed, first_accepted) if any."""
    first, last, users = _when(delta.first), _when(delta.last), _capped_users([], delta.users)
    first_failed, last_failed = _earliest(None, delta.first_failed), _latest(None, delta.last_failed)
    first_accepted = _earliest(None, delta.first_accepted)
    if stored is not None:
        first, last = min(stored[0], first), max(stored[1], last)
        users = _capped_users(stored[2], delta.users) if delta.users else stored[2]
        first_failed = _earliest(stored[3], delta.first_failed)
        last_failed = _latest(stored[4], delta.last_failed)
        first_accepted = _earliest(stored[5], delta.first_accepted)
    return (*key, delta.sessions, delta.failed, delta.accepted, first, last, json.dumps(users), first_failed,
            last_failed, first_accepted)  # fmt: skip


def _add_logins(logins: list[list], ends: dict[tuple[str, float], float]) -> None:
    if logins:
        AcceptedLogin.objects.bulk_create(
            [
                AcceptedLogin(day=date.fromisoformat(day), at=_when(ts), user=user or "", ip=ip or "",
                              port=port, method=method or "", key=key or "", connection=connection)
                for day, ts, user, ip, port, method, key, connection in logins
            ],
            batch_size=500,
            ignore_conflicts=True,  # the same login read twice is still one
        )  # fmt: skip
    for (key, at), end in ends.items():
        AcceptedLogin.objects.filter(connection=key, at=_when(at), ended_at=None).update(ended_at=_when(end))


def _earliest(stored: datetime | None, ts: float | None) -> datetime | None:
    if ts is None:
        return stored
    return _when(ts) if stored is None else min(stored, _when(ts))


def _latest(stored: datetime | None, ts: float | None) -> datetime | None:
    if ts is None:
        return stored
    return _when(ts) if stored is None else max(stored, _when(ts))


def _capped_users(users: list[str], new: set[str]) -> list[str]:
    merged = list(users)
    for user in sorted(new):
        if len(merged) >= DailySource.MAX_USERS:
            break
        if user not in merged:
            merged.append(user)
    return merged
