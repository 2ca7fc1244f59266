"""The inventory's rules that live on the models."""

from __future__ import annotations

import random
import unittest
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone

from django.db import connection
from django.test import TestCase, TransactionTestCase
from django.test.utils import CaptureQueriesContext

from collector.contract import COUNT_NAMES
from inventory_app import fleet, identity, models, polling
from inventory_app.models import FleetAddress, FleetAddressTotal, Host, HostSource, normalised_url
from inventory_app.retention import prune_central

from .stored import DAY, make_host


class NormalisedUrlTests(unittest.TestCase):
    def test_it_spells_the_urls_of_one_agent_one_way(self):
        same = {
            "https://web1.example.com:8001": [
                "HTTPS://WEB1.example.com:8001/",
                "https://web1.example.com.:8001",
                "  https://web1.example.com:8001//  ",
            ],
            "https://web1.example.com": ["https://web1.example.com:443", "https://user:pw@web1.example.com/"],
            "http://web1.example.com": ["http://web1.example.com:80/"],
            "http://[2001:db8::1]:8001": ["http://[2001:DB8:0::1]:8001/"],
            "https://proxy.example.com/agents/web1": ["https://PROXY.example.com:443/agents/web1/"],
        }
        for expected, urls in same.items():
            for url in [expected, *urls]:
                with self.subTest(url):
                    self.assertEqual(normalised_url(url), expected)

    def test_it_keeps_what_tells_agents_apart(self):
        different = [
            "https://web1.example.com",
            "http://web1.example.com",
            "https://web1.example.com:8443",
            "https://web2.example.com",
            "https://proxy.example.com/agents/web1",
            "https://proxy.example.com/agents/WEB1",
            "https://proxy.example.com/agents/web2",
        ]
        self.assertEqual(len({normalised_url(url) for url in different}), len(different))


def source(ip: str, sessions: int, failed: int = 0, accepted: int = 0, is_address: bool = True,
           users: tuple = ("root",), first: int = 0, last: int = 0) -> dict:  # fmt: skip
    """A source row as polling's answers.source checks it; first and last seen `first` and
    `last` minutes after noon."""
    seen = datetime(2026, 3, 2, 12, tzinfo=UTC)
    return {"ip": ip, "is_address": is_address, "sessions": sessions, "failed_attempts": failed,
            "accepted": accepted, "users": list(users), "first_seen": seen + timedelta(minutes=first),
            "last_seen": seen + timedelta(minutes=last),
            "first_failed": seen if failed else None, "last_failed": seen if failed else None,
            "first_accepted": seen if accepted else None}  # fmt: skip


def day_row(sources: list[dict]) -> dict:
    counts = dict.fromkeys(COUNT_NAMES, 0)
    counts.update(sessions=sum(s["sessions"] for s in sources), unique_sources=len(sources))
    return {**counts, "top_users": []}


def store(host: Host, day: date, sources: list[dict]) -> None:
    polling.store_day(host, day, day_row(sources), sources)


class FleetAddressMixin:
    """What every FleetAddress test checks: the fleet's rows are exactly the sums of the hosts'
    sources, recomputed here the slow way."""

    def assertRollupExact(self) -> dict:
        expected: dict = {}
        for row in HostSource.objects.order_by("day", "ip", "host_id"):
            hosts, counts, users, first, last = expected.get(
                (row.day, row.ip), (0, (0, 0, 0), {}, row.first_seen, row.last_seen)
            )
            for name in row.users:
                users[name] = users.get(name, 0) + 1
            expected[(row.day, row.ip)] = (
                hosts + 1,
                tuple(a + b for a, b in zip(counts, (row.sessions, row.failed_attempts, row.accepted))),
                users,
                min(first, row.first_seen),
                max(last, row.last_seen),
            )
        bits: dict = {}
        for day, ip, host_id in HostSource.objects.values_list("day", "ip", "host_id"):
            bits[(day, ip)] = bits.get((day, ip), 0) | 1 << host_id
        stored = {}
        for row in FleetAddress.objects.all():
            self.assertEqual(
                int.from_bytes(bytes(row.host_bits), "little"), bits.get((row.day, row.ip)), row.ip
            )
            stored[(row.day, row.ip)] = (row.hosts, (row.sessions, row.failed_attempts, row.accepted), row.users,
                                         row.first_seen, row.last_seen)  # fmt: skip
        self.assertEqual(stored, expected)
        # And the totals over every day: each address's rows of the days summed.
        totals: dict = {}
        for (_, ip), (hosts, counts, *_) in expected.items():
            summed = totals.get(ip, (0, 0, 0, 0))
            totals[ip] = tuple(a + b for a, b in zip(summed, (hosts, *counts)))
        self.assertEqual(
            {
                row.ip: (row.host_days, row.sessions, row.failed_attempts, row.accepted)
                for row in FleetAddressTotal.objects.all()
            },
            totals,
        )
        return {key: (value[0], *value[1]) for key, value in stored.items()}


class FleetAddressTests(FleetAddressMixin, TestCase):
    def setUp(self):
        self.web1, self.web2, self.db1 = (make_host(name) for name in ("web1", "web2", "db1"))

    def test_it_sums_each_address_over_the_hosts_that_saw_it(self):
        store(self.web1, DAY, [source("203.0.113.1", 5, 20), source("192.0.2.10", 1, 0, 1)])
        store(self.web2, DAY, [source("203.0.113.1", 2, 3, 1)])
        store(self.db1, DAY + timedelta(days=1), [source("203.0.113.1", 7, 7)])
        stored = self.assertRollupExact()
        self.assertEqual(stored[(DAY, "203.0.113.1")], (2, 7, 23, 1))
        self.assertEqual(stored[(DAY + timedelta(days=1), "203.0.113.1")], (1, 7, 7, 0))
        self.assertEqual(
            fleet.distinct_addresses_per_day(DAY, DAY + timedelta(days=1)),
            {DAY: 2, DAY + timedelta(days=1): 1},
        )

    def test_it_stays_exact_when_a_day_is_replaced(self):
        store(self.web1, DAY, [source("203.0.113.1", 5, 20), source("198.51.100.7", 1, 1)])
        store(self.web2, DAY, [source("203.0.113.1", 2, 3), source("198.51.100.7", 4, 4)])
        # web1's day grew: one address more busy, one gone (its agent's database was reset and
        # counted again), one new.
        store(self.web1, DAY, [source("203.0.113.1", 9, 30, 1), source("192.0.2.99", 1)])
        stored = self.assertRollupExact()
        self.assertEqual(stored[(DAY, "203.0.113.1")], (2, 11, 33, 1))
        self.assertEqual(stored[(DAY, "198.51.100.7")], (1, 4, 4, 0))
        # The last host to see an address forgets it: the fleet's row goes.
        store(self.web2, DAY, [source("203.0.113.1", 2, 3)])
        self.assertNotIn((DAY, "198.51.100.7"), self.assertRollupExact())
        # The same day again changes nothing.
        store(self.web2, DAY, [source("203.0.113.1", 2, 3)])
        self.assertRollupExact()
        self.assertEqual(fleet.day_totals(DAY)["unique_sources"], 2)

    def test_it_replaces_a_day_in_queries_that_do_not_grow_with_its_addresses(self):
        # A day replaced with other addresses (today's answer, polled again), some shared with
        # another host and keeping their times, most its own: the rollup's reads and writes go
        # by chunks, not an address at a time (once 2 queries per address: a round took minutes).
        def queries_to_replace(n: int, host: Host) -> int:
            shared = [source(f"198.51.100.{i}", 1, first=5, last=9) for i in range(5)]
            store(self.web2, DAY, shared)
            store(host, DAY, shared + [source(f"10.0.{i // 250}.{i % 250}", 2, first=10) for i in range(n)])
            with CaptureQueriesContext(connection) as queries:
                store(host, DAY, [source(f"10.1.{i // 250}.{i % 250}", 3, first=20) for i in range(n)])
            self.assertRollupExact()
            return len(queries)

        self.assertEqual(queries_to_replace(10, self.web1), queries_to_replace(200, self.db1))

    def test_it_follows_the_users_and_times_of_each_host_as_they_change_and_go(self):
        store(self.web1, DAY, [source("203.0.113.1", 5, 20, users=("root", "admin"), first=10, last=50)])
        store(self.web2, DAY, [source("203.0.113.1", 2, 2, users=("root", "pi"), first=20, last=30)])
        self.assertRollupExact()
        # web1's row shrinks (its agent counted again): its earliest time and "admin" go.
        store(self.web1, DAY, [source("203.0.113.1", 1, 1, users=("root",), first=25, last=40)])
        row = FleetAddress.objects.get(day=DAY, ip="203.0.113.1")
        self.assertEqual(
            (row.users, row.first_seen.minute, row.last_seen.minute), ({"root": 2, "pi": 1}, 20, 40)
        )
        self.assertRollupExact()
        self.web2.delete()
        row = FleetAddress.objects.get(day=DAY, ip="203.0.113.1")
        self.assertEqual((row.users, row.first_seen.minute, row.last_seen.minute), ({"root": 1}, 25, 40))
        self.assertRollupExact()

    def test_it_counts_each_host_once_over_several_days(self):
        later = DAY + timedelta(days=1)
        store(self.web1, DAY, [source("203.0.113.1", 5, 20, users=("root",), first=5)])
        store(self.web1, later, [source("203.0.113.1", 1, 1, users=("pi",), first=6, last=90)])
        store(self.web2, later, [source("203.0.113.1", 1, 1, users=("root",), first=7, last=7)])
        rows = list(fleet.addresses(DAY, later))
        fleet.add_seen(DAY, later, rows)
        self.assertEqual(
            [
                (r["ip"], r["hosts"], r["sessions"], r["users"], r["first_seen"].minute, r["last_seen"].hour)
                for r in rows
            ],
            [("203.0.113.1", 2, 7, ["pi", "root"], 5, 13)],
        )

    def test_it_counts_a_name_as_a_source_but_not_as_an_address(self):
        store(self.web1, DAY, [source("UNKNOWN", 3, 3, is_address=False), source("203.0.113.1", 1, 1)])
        store(self.web2, DAY, [source("UNKNOWN", 1, 1, is_address=False)])
        self.assertEqual(self.assertRollupExact()[(DAY, "UNKNOWN")], (2, 4, 4, 0))
        self.assertEqual(fleet.day_totals(DAY)["unique_sources"], 1)

    def test_it_forgets_what_a_deleted_host_saw(self):
        for host in (self.web1, self.web2, self.db1):
            store(host, DAY, [source("203.0.113.1", 5, 20), source(f"192.0.2.{host.pk}", 1)])
            store(host, DAY + timedelta(days=1), [source("203.0.113.1", 1, 1)])
        self.web1.delete()
        self.assertEqual(self.assertRollupExact()[(DAY, "203.0.113.1")], (2, 10, 40, 0))
        Host.objects.filter(pk__in=[self.web2.pk, self.db1.pk]).delete()  # the admin's bulk delete
        self.assertEqual(self.assertRollupExact(), {})

    def test_it_leaves_no_row_for_an_address_whose_fleet_row_went_missing(self):
        # Not a state polling makes (the tables are written together), but one a hand-edited or
        # restored database can hold: a host leaving such an address must not create its row.
        store(self.web1, DAY, [source("203.0.113.9", 3, 3)])
        FleetAddress.objects.all().delete()
        FleetAddress.objects.remove_host(self.web1.pk)
        self.assertFalse(FleetAddress.objects.exists())

    def test_it_forgets_what_a_duplicate_stored(self):
        store(self.web1, DAY, [source("203.0.113.1", 5, 20)])
        store(self.web2, DAY, [source("203.0.113.1", 2, 2), source("198.51.100.7", 1)])
        identity.demote(self.web2.pk, self.web1, "the same agent")
        self.assertEqual(self.assertRollupExact(), {(DAY, "203.0.113.1"): (1, 5, 20, 0)})

    def test_it_forgets_the_days_a_host_no_longer_reports_and_those_retention_prunes(self):
        later = DAY + timedelta(days=30)
        for day in (DAY, later):
            store(self.web1, day, [source("203.0.113.1", 5, 20)])
            store(self.web2, day, [source("203.0.113.1", 2, 2)])
        FleetAddress.objects.remove_host(self.web2.pk, [later])
        self.assertEqual(self.assertRollupExact()[(later, "203.0.113.1")], (1, 5, 20, 0))
        prune_central(sender=None, before=DAY + timedelta(days=1))
        self.assertEqual(self.assertRollupExact(), {(later, "203.0.113.1"): (1, 5, 20, 0)})


class FleetAddressConcurrencyTests(FleetAddressMixin, TransactionTestCase):
    """Polling threads store hosts of the same day at once, each in its own transaction: sums
    stay exact and overlapping addresses (locked in one order) never deadlock."""

    def test_it_stays_exact_with_many_writers_at_once(self):
        hosts = [make_host(f"web{n}") for n in range(8)]
        shared = [f"203.0.113.{n}" for n in range(60)]

        def poll(host: Host) -> None:
            try:
                for round_ in range(3):  # each round replaces the day, grown
                    rng = random.Random(host.pk * 10 + round_)
                    ips = rng.sample(shared, 40) + [f"10.{host.pk}.0.{n}" for n in range(5)]
                    store(
                        host, DAY, [source(ip, 1 + round_ + rng.randrange(3), rng.randrange(5)) for ip in ips]
                    )
            finally:
                connection.close()

        with ThreadPoolExecutor(len(hosts)) as pool:
            list(pool.map(poll, hosts))
        stored = self.assertRollupExact()
        self.assertEqual(sum(row[0] for row in stored.values()), 8 * 45)


class MomentAdapterTests(TestCase):
    def test_it_writes_times_as_django_does(self):
        adapt = models.moment_adapter(connection)
        plus_two = timezone(timedelta(hours=2))
        for value in (
            None,
            datetime(2026, 12, 2, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 12, 3, 0, 30, 0, 123456, tzinfo=plus_two),
            datetime(2026, 3, 29, 1, 0, 0, 1, tzinfo=UTC),
        ):
            with self.subTest(value=value):
                self.assertEqual(adapt(value), connection.ops.adapt_datetimefield_value(value))
