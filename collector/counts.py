"""Reading the stored counts and health, as the agent's commands and API show them."""

from __future__ import annotations

import os
from datetime import date, timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

import alphaproject

from .models import FILE, AgentState, DailyCount, DailySource, DailyUser, LogSource, UnknownSample

TOP = 10
HEALTH_SOURCES = 10


def day_rows(since: date | None = None, until: date | None = None) -> list[dict]:
    """Per-day counts in date order, with the number of distinct source addresses."""
    sources = DailySource.objects.addresses()
    if since is not None:
        sources = sources.filter(day__gte=since)
    if until is not None:
        sources = sources.filter(day__lte=until)
    unique = dict(sources.values("day").annotate(n=Count("id")).values_list("day", "n"))
    return [
        row.as_dict(row.pruned_sources if row.pruned_sources is not None else unique.get(row.day, 0))
        for row in DailyCount.objects.for_range(since, until)
    ]


def range_rows(since: date, until: date) -> list[dict]:
    """Every day from `since` through `until` in date order, as the range endpoint lists them: a
    day without connections is zeros, as day_detail answers it, never left out."""
    stored = {row["date"]: row for row in day_rows(since, until)}
    days = (since + timedelta(days=i) for i in range((until - since).days + 1))
    return [stored.get(day.isoformat()) or DailyCount(day=day).as_dict(0) for day in days]


def day_detail(day: date) -> dict:
    """One day with its busiest sources and users; a day without connections is all zeros."""
    row = DailyCount.objects.filter(day=day).first() or DailyCount(day=day)
    detail = {"host": settings.ALPHA_HOST_NAME}
    unique = (
        row.pruned_sources
        if row.pruned_sources is not None
        else DailySource.objects.filter(day=day).addresses().count()
    )
    detail.update(row.as_dict(unique))
    detail["top_sources"] = list(
        DailySource.objects.filter(day=day)
        .order_by("-sessions", "-failed_attempts", "ip")
        .values("ip", "sessions", "failed_attempts", "accepted")[:TOP]
    )
    detail["top_users"] = list(
        DailyUser.objects.filter(day=day)
        .order_by("-sessions", "-failed_attempts", "user")
        .values("user", "sessions", "failed_attempts", "accepted")[:TOP]
    )
    return detail


def health() -> dict:
    now = timezone.now()
    hour = int(now.timestamp() // 3600)
    state = AgentState.objects.filter(pk=1).first()
    # The sources the agent follows, not every row it has: the file rotated away from a path is
    # finished (its lines counted), and the journal an earlier run read is no source now.
    sources = LogSource.objects.filter(pk__in=state.followed if state else [], finished=False)
    sources = sources.order_by("-last_read_at")[:HEALTH_SOURCES]
    heartbeat = state.heartbeat_at if state else None
    return {
        "host": settings.ALPHA_HOST_NAME,
        "agent_version": alphaproject.__version__,
        "time_zone": settings.TIME_ZONE,
        "now": now,
        "heartbeat_at": heartbeat,
        # A following agent writes a heartbeat every minute, quiet log or not.
        "following": bool(heartbeat and (now - heartbeat).total_seconds() < 3 * AgentState.HEARTBEAT),
        "source_problem": (state.source_problem if state else "") or None,
        "sources": [_source_health(source, now, hour) for source in sources],
    }


def _source_health(source: LogSource, now, hour: int) -> dict:
    file_size = unread = None
    if source.kind == FILE:
        try:
            st = os.stat(source.path)
        except OSError:
            pass
        else:
            file_size = st.st_size
            same_file = (st.st_dev, st.st_ino) == (source.device, source.inode)
            # A different file at the path was rotated in and not read yet: all of it is unread.
            unread = max(0, st.st_size - source.offset) if same_file else st.st_size
    samples = UnknownSample.objects.filter(source=source, seen_at__gte=now - timezone.timedelta(hours=24))
    return {
        "kind": source.kind,
        "path": source.path,
        "inode": source.inode,
        "offset": source.offset,
        "file_size": file_size,
        "unread_bytes": unread,
        "cursor": source.cursor,
        "last_read_at": source.last_read_at,
        "last_event_at": source.last_event_at,
        "seconds_since_last_event": int((now - source.last_event_at).total_seconds())
        if source.last_event_at
        else None,
        "lines_read": source.lines_read,
        "malformed_lines": source.malformed_lines,
        "unknown_last_24h": source.unknown_last_24h(hour),
        "unknown_samples": list(samples.order_by("-seen_at").values("seen_at", "message")[:5]),
    }
