"""Writing a batch: count deltas, read positions and open connections in one transaction."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from django.db import transaction
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
)
from .sessions import SESSIONS, Tally, Tracker

# Rows per query when reading existing counts: well under SQLite's variable limit.
KEY_CHUNK = 500


class ConcurrentWriter(Exception):
    pass


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
            state = AgentState.objects.select_for_update().get(pk=1)
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
    _add_keyed(DailySource, "ip", tally.sources, _merge_source, _new_source)
    _add_keyed(DailyUser, "user", tally.users, _merge_user, _new_user)
    _add_keyed(
        DailyEvent,
        "kind",
        {k: [v] for k, v in tally.kinds.items()},
        _merge_event,
        _new_event,
    )
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


def _add_keyed(model, key_field: str, deltas: dict, merge, new) -> None:
    """Upsert rows keyed by (day, key_field): read the existing ones, add, write back."""
    if not deltas:
        return
    by_day: dict[str, list[str]] = {}
    for day, key in deltas:
        by_day.setdefault(day, []).append(key)
    rows = []
    for day_text, keys in by_day.items():
        day = date.fromisoformat(day_text)
        for start in range(0, len(keys), KEY_CHUNK):
            chunk = keys[start : start + KEY_CHUNK]
            existing = {
                getattr(row, key_field): row
                for row in model.objects.filter(day=day, **{f"{key_field}__in": chunk})
            }
            for key in chunk:
                delta = deltas[(day_text, key)]
                row = existing.get(key)
                if row is None:
                    rows.append(new(day, key, delta))
                else:
                    merge(row, delta)
                    rows.append(row)
    fields = [f.name for f in model._meta.concrete_fields if f.name not in ("id", "day", key_field)]
    model.objects.bulk_create(
        rows,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["day", key_field],
        update_fields=fields,
    )


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
    for (connection, at), end in ends.items():
        AcceptedLogin.objects.filter(connection=connection, at=_when(at), ended_at=None).update(
            ended_at=_when(end)
        )


def _earliest(stored: datetime | None, ts: float | None) -> datetime | None:
    if ts is None:
        return stored
    return _when(ts) if stored is None else min(stored, _when(ts))


def _latest(stored: datetime | None, ts: float | None) -> datetime | None:
    if ts is None:
        return stored
    return _when(ts) if stored is None else max(stored, _when(ts))


def _merge_source(row: DailySource, delta: list) -> None:
    row.sessions += delta[0]
    row.failed_attempts += delta[1]
    row.accepted += delta[2]
    row.first_seen = min(row.first_seen, _when(delta[3]))
    row.last_seen = max(row.last_seen, _when(delta[4]))
    row.first_failed = _earliest(row.first_failed, delta[6])
    row.last_failed = _latest(row.last_failed, delta[7])
    row.first_accepted = _earliest(row.first_accepted, delta[8])
    if delta[5] and len(row.users) < DailySource.MAX_USERS:
        row.users = _capped_users(row.users, delta[5])


def _new_source(day: date, ip: str, delta: list) -> DailySource:
    return DailySource(
        day=day, ip=ip, sessions=delta[0], failed_attempts=delta[1], accepted=delta[2],
        first_seen=_when(delta[3]), last_seen=_when(delta[4]), users=_capped_users([], delta[5]),
        first_failed=_earliest(None, delta[6]), last_failed=_latest(None, delta[7]),
        first_accepted=_earliest(None, delta[8]),
    )  # fmt: skip


def _capped_users(users: list[str], new: set[str]) -> list[str]:
    merged = list(users)
    for user in sorted(new):
        if len(merged) >= DailySource.MAX_USERS:
            break
        if user not in merged:
            merged.append(user)
    return merged


def _merge_user(row: DailyUser, delta: list) -> None:
    row.sessions += delta[0]
    row.failed_attempts += delta[1]
    row.accepted += delta[2]


def _new_user(day: date, user: str, delta: list) -> DailyUser:
    return DailyUser(
        day=day,
        user=user,
        sessions=delta[0],
        failed_attempts=delta[1],
        accepted=delta[2],
    )


def _merge_event(row: DailyEvent, delta: list) -> None:
    row.count += delta[0]


def _new_event(day: date, kind: str, delta: list) -> DailyEvent:
    return DailyEvent(day=day, kind=kind, count=delta[0])
