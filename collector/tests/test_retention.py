"""`manage.py prune`: detail past ALPHA_RETAIN_DETAIL_DAYS goes, every daily total stays, and
nothing within the window is touched, on an agent's tables and on the central server's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from io import StringIO
from unittest import mock

from django.core.management import call_command
from django.test import TestCase, override_settings

from collector.counts import day_detail, day_rows
from collector.models import DailyCount, DailySource, DailyUser
from inventory_app.models import Host, HostDay, HostSource

TODAY = date(2026, 6, 30)
SEEN = datetime(2026, 6, 1, tzinfo=UTC)


def agent_day(day: date, sources: int) -> None:
    DailyCount.objects.create(day=day, sessions=sources * 2, failed_attempts=sources, failed_sessions=sources)
    DailySource.objects.bulk_create(
        DailySource(day=day, ip=f"198.51.100.{i}", sessions=2, failed_attempts=1, users=["root"],
                    first_seen=SEEN, last_seen=SEEN) for i in range(sources)
    )  # fmt: skip
    DailyUser.objects.create(day=day, user="root", sessions=sources, failed_attempts=sources)


@override_settings(ALPHA_RETAIN_DETAIL_DAYS=10)
class PruneTests(TestCase):
    def setUp(self):
        self.old, self.edge = TODAY - timedelta(days=10), TODAY - timedelta(days=9)
        agent_day(self.old, 3)
        agent_day(self.edge, 4)
        self.host = Host.objects.create(name="web1", url="http://web1:8001", token="t" * 20)
        for day in (self.old, self.edge):
            HostDay.objects.create(host=self.host, day=day, sessions=5, unique_sources=2,
                                   top_users=[{"user": "root", "sessions": 5, "failed_attempts": 1, "accepted": 0}])  # fmt: skip
            HostSource.objects.create(host=self.host, day=day, ip="203.0.113.1", sessions=5,
                                      first_seen=SEEN, last_seen=SEEN)  # fmt: skip
        self.before = {"rows": day_rows(), "old": day_detail(self.old)}

    def prune(self) -> str:
        out = StringIO()
        with mock.patch("django.utils.timezone.localdate", return_value=TODAY):
            call_command("prune", stdout=out)
        return out.getvalue()

    def test_it_deletes_old_detail_and_keeps_every_daily_total(self):
        said = self.prune()
        self.assertIn(f"Kept detail from {self.edge} on", said)
        # The agent: the old day's sources and users are gone, its counts are not, and its
        # distinct sources are still what they were.
        self.assertFalse(DailySource.objects.filter(day=self.old).exists())
        self.assertFalse(DailyUser.objects.filter(day=self.old).exists())
        self.assertEqual(day_rows(), self.before["rows"])
        self.assertEqual(day_detail(self.old)["unique_sources"], 3)
        # The day inside the window is untouched.
        self.assertEqual(DailySource.objects.filter(day=self.edge).count(), 4)
        self.assertEqual(DailyUser.objects.filter(day=self.edge).count(), 1)
        # The central server: host sources and top users of the old day go, its counts stay.
        self.assertFalse(HostSource.objects.filter(day=self.old).exists())
        old = HostDay.objects.get(day=self.old)
        self.assertEqual((old.sessions, old.unique_sources, old.top_users), (5, 2, []))
        edge = HostDay.objects.get(day=self.edge)
        self.assertEqual((len(edge.top_users), HostSource.objects.filter(day=self.edge).count()), (1, 1))

    def test_it_is_idempotent(self):
        self.prune()
        self.assertIn(
            "deleted 0 agent sources, 0 agent users, 0 agent logins, 0 host sources, 0 host days' top users, 0 host logins",
            self.prune(),
        )
        self.assertEqual(day_detail(self.old)["unique_sources"], 3)
