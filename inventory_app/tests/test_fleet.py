"""The fleet's reads over a range of days: from the totals over every stored day less the days
outside the range, or from the range's own rows, always what the hosts' sources say."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from inventory_app import fleet, polling
from inventory_app.models import FleetAddress, HostSource
from inventory_app.retention import prune_central

from .stored import DAY, make_host
from .test_models import day_row, source

DAYS = 24  # stored days, DAY to LAST
LAST = DAY + timedelta(days=DAYS - 1)


def slow_ranking(since, until) -> list[dict]:
    """The attackers page's order, from every host's sources of the range."""
    sums: dict[str, dict] = {}
    for row in HostSource.objects.filter(day__gte=since, day__lte=until):
        summed = sums.setdefault(row.ip, {"ip": row.ip, "sessions": 0, "failed_attempts": 0, "accepted": 0})
        summed["sessions"] += row.sessions
        summed["failed_attempts"] += row.failed_attempts
        summed["accepted"] += row.accepted
    for row in sums.values():
        row["flagged"] = row["accepted"] > 0 and row["failed_attempts"] > 0
    return sorted(sums.values(), key=lambda row: (not row["flagged"], -row["failed_attempts"], row["ip"]))


def slow_distinct(since, until) -> int:
    rows = HostSource.objects.filter(day__gte=since, day__lte=until, is_address=True, sessions__gt=0)
    return len(set(rows.values_list("ip", flat=True)))


class RangeTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        # Hosts seeing addresses of a shared pool on random days, many with zero connections
        # (refused by the listener) or failures only, some logging in, a few names not addresses.
        rng = random.Random(7)
        pool = [f"203.0.113.{n}" for n in range(30)] + ["UNKNOWN", "scanner.example"]
        for n in range(5):
            host = make_host(f"web{n}")
            for offset in range(DAYS):
                if rng.random() < 0.3:
                    continue
                sources = [
                    source(
                        ip,
                        rng.choice((0, 1, 1, 2, 5)),
                        rng.choice((0, 0, 1, 3, 9)),
                        int(rng.random() < 0.1),
                        is_address=ip[0].isdigit(),
                    )  # fmt: skip
                    for ip in rng.sample(pool, rng.randrange(1, 12))
                ]
                polling.store_day(host, DAY + timedelta(days=offset), day_row(sources), sources)

    def ranges(self):
        """Ranges read both ways: every stored day and more, a day or two short at either end
        (the totals less those days), and ranges reading their own rows."""
        whole = [(DAY, LAST), (DAY - timedelta(days=5), LAST + timedelta(days=3))]
        short = [(DAY + timedelta(days=1), LAST), (DAY, LAST - timedelta(days=2)),
                 (DAY + timedelta(days=1), LAST - timedelta(days=1))]  # fmt: skip
        own = [
            (DAY + timedelta(days=5), DAY + timedelta(days=9)),
            (LAST, LAST),
            (LAST + timedelta(days=1), LAST + timedelta(days=9)),
        ]
        for since, until in whole + short:
            self.assertTrue(fleet.reads_totals(since, until), (since, until))
        for since, until in own:
            self.assertFalse(fleet.reads_totals(since, until), (since, until))
        return whole + short + own

    def test_it_ranks_a_range_as_every_hosts_sources_do(self):
        for since, until in self.ranges():
            expected = slow_ranking(since, until)
            for start, stop in ((0, 5), (4, 11), (0, 1000), (len(expected) - 2, len(expected) + 5)):
                with self.subTest(since=since, until=until, start=start):
                    start = max(0, start)
                    self.assertEqual(fleet.ranked_addresses(since, until, start, stop), expected[start:stop])

    def test_it_counts_a_ranges_distinct_addresses_as_every_hosts_sources_do(self):
        for since, until in self.ranges():
            with self.subTest(since=since, until=until):
                self.assertEqual(fleet.fleet_distinct_addresses(since, until), slow_distinct(since, until))
                self.assertEqual(
                    fleet.range_totals(since, until)["distinct_sources"], slow_distinct(since, until)
                )

    def test_it_stays_exact_when_days_are_replaced_hosts_deleted_and_days_pruned(self):
        web0 = polling.Host.objects.get(name="web0")
        replaced = [source("203.0.113.1", 40, 40, 1), source("198.51.100.9", 2, 0)]
        polling.store_day(web0, DAY + timedelta(days=1), day_row(replaced), replaced)
        polling.Host.objects.get(name="web3").delete()
        prune_central(sender=None, before=DAY + timedelta(days=2))
        one_outside = DAY + timedelta(days=3)
        self.assertTrue(fleet.reads_totals(one_outside, LAST))
        for since in (DAY + timedelta(days=2), one_outside):
            with self.subTest(since=since):
                self.assertEqual(fleet.ranked_addresses(since, LAST, 0, 1000), slow_ranking(since, LAST))
                self.assertEqual(fleet.fleet_distinct_addresses(since, LAST), slow_distinct(since, LAST))

    def test_it_reads_a_range_in_queries_that_do_not_grow_with_its_addresses(self):
        def queries(since, until) -> tuple[int, int]:
            with CaptureQueriesContext(connection) as ranked:
                fleet.ranked_addresses(since, until, 0, 50)
            with CaptureQueriesContext(connection) as distinct:
                fleet.fleet_distinct_addresses(since, until)
            return len(ranked), len(distinct)

        before = [queries(since, until) for since, until in self.ranges()]
        host = make_host("big")
        many = [source(f"10.0.{n // 250}.{n % 250}", 1, 1) for n in range(600)]
        for offset in range(DAYS):
            polling.store_day(host, DAY + timedelta(days=offset), day_row(many), many)
        self.assertEqual([queries(since, until) for since, until in self.ranges()], before)
        self.assertEqual(set(before), {(2, 2)})  # the stored days, then the range
        self.assertGreater(FleetAddress.objects.count(), 600 * DAYS)
