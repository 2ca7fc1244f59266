"""Prometheus metrics of the agent, computed from the database at scrape time."""

from __future__ import annotations

from django.db.models import Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .contract import CONNECTION_COUNTS, TALLIED
from .counts import health
from .models import DailyCount, DailyEvent


class AgentCollector(Collector):
    def collect(self):
        state = health()
        lines = CounterMetricFamily("alpha_lines_read", "Log lines read, per source.", labels=["source"])
        malformed = CounterMetricFamily(
            "alpha_malformed_lines", "Malformed lines, per source.", labels=["source"]
        )
        unread = GaugeMetricFamily("alpha_unread_bytes", "Bytes of the log not read yet.", labels=["source"])
        last = GaugeMetricFamily(
            "alpha_last_event_timestamp_seconds", "Time of the newest event read.", labels=["source"]
        )
        for source in state["sources"]:
            labels = [source["path"]]
            lines.add_metric(labels, source["lines_read"])
            malformed.add_metric(labels, source["malformed_lines"])
            if source["unread_bytes"] is not None:
                unread.add_metric(labels, source["unread_bytes"])
            if source["last_event_at"] is not None:
                last.add_metric(labels, source["last_event_at"].timestamp())
        yield from (lines, malformed, unread, last)

        events = CounterMetricFamily(
            "alpha_events", "sshd events by kind (repeats expanded).", labels=["kind"]
        )
        for row in DailyEvent.objects.values("kind").annotate(total=Sum("count")).order_by("kind"):
            events.add_metric([row["kind"]], row["total"])
        yield events

        totals = DailyCount.objects.aggregate(**{name: Sum(name) for name in TALLIED})
        connections = CounterMetricFamily(
            "alpha_connections", "SSH connections by outcome.", labels=["outcome"]
        )
        for name in CONNECTION_COUNTS:
            # sessions -> all, failed_sessions -> failed, invalid_user_sessions -> invalid_user
            outcome = "all" if name == "sessions" else name.removesuffix("_sessions")
            connections.add_metric([outcome], totals[name] or 0)
        yield connections
        failed = totals["failed_attempts"] or 0
        yield CounterMetricFamily("alpha_failed_attempts", "Failed authentication attempts.", value=failed)
