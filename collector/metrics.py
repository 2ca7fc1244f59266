"""Prometheus metrics of the agent, computed from the database at scrape time."""

from __future__ import annotations

from django.db.models import Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

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

        totals = DailyCount.objects.aggregate(
            *[
                Sum(name)
                for name in (
                    "sessions",
                    "accepted",
                    "failed_sessions",
                    "invalid_user_sessions",
                    "preauth_only",
                )
            ]
        )
        connections = CounterMetricFamily(
            "alpha_connections", "SSH connections by outcome.", labels=["outcome"]
        )
        for outcome, field in (
            ("all", "sessions"),
            ("accepted", "accepted"),
            ("failed", "failed_sessions"),
            ("invalid_user", "invalid_user_sessions"),
            ("preauth_only", "preauth_only"),
        ):
            connections.add_metric([outcome], totals[f"{field}__sum"] or 0)
        yield connections
        failed = DailyCount.objects.aggregate(n=Sum("failed_attempts"))["n"] or 0
        yield CounterMetricFamily("alpha_failed_attempts", "Failed authentication attempts.", value=failed)
