"""Migrations that move data: run for real, from the state before them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase

BEFORE = [("inventory_app", "0006_logins_and_source_times")]
AFTER = [("inventory_app", "0007_fleet_address")]
TOTALS = [("inventory_app", "0008_fleet_address_total")]


class FleetAddressMigrationTests(TransactionTestCase):
    def migrate(self, targets):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)
        return executor.loader.project_state(targets).apps

    def tearDown(self):
        self.migrate(executor_leaf())

    def test_it_builds_the_fleet_rows_from_the_sources_already_stored(self):
        apps = self.migrate(BEFORE)
        Host, HostSource = (
            apps.get_model("inventory_app", "Host"),
            apps.get_model("inventory_app", "HostSource"),
        )
        day, seen = date(2026, 3, 2), datetime(2026, 3, 2, 12, tzinfo=UTC)
        hosts = [
            Host.objects.create(name=f"web{n}", url=f"http://web{n}:8001", token="t" * 20) for n in range(3)
        ]
        for n, host in enumerate(hosts):
            for ip, is_address in (("203.0.113.1", True), ("UNKNOWN", False), (f"192.0.2.{n}", True)):
                HostSource.objects.create(host=host, day=day, ip=ip, is_address=is_address, sessions=n + 1,
                                          failed_attempts=2 * n, accepted=n % 2, users=["root", f"u{n}"], first_seen=seen, last_seen=seen)  # fmt: skip
        apps = self.migrate(AFTER)
        rows = {
            row.ip: (row.is_address, row.hosts, row.sessions, row.failed_attempts, row.accepted)
            for row in apps.get_model("inventory_app", "FleetAddress").objects.filter(day=day)
        }
        shared = apps.get_model("inventory_app", "FleetAddress").objects.get(day=day, ip="203.0.113.1")
        self.assertEqual(shared.users, {"root": 3, "u0": 1, "u1": 1, "u2": 1})
        self.assertEqual(
            int.from_bytes(bytes(shared.host_bits), "little"), sum(1 << host.pk for host in hosts)
        )
        self.assertEqual((shared.first_seen, shared.last_seen), (seen, seen))
        self.assertEqual(
            rows,
            {
                "203.0.113.1": (True, 3, 6, 6, 1),
                "UNKNOWN": (False, 3, 6, 6, 1),
                "192.0.2.0": (True, 1, 1, 0, 0),
                "192.0.2.1": (True, 1, 2, 2, 1),
                "192.0.2.2": (True, 1, 3, 4, 0),
            },
        )

    def test_it_totals_the_fleet_rows_of_every_day(self):
        apps = self.migrate(BEFORE)
        Host, HostSource = (
            apps.get_model("inventory_app", "Host"),
            apps.get_model("inventory_app", "HostSource"),
        )
        seen = datetime(2026, 3, 2, 12, tzinfo=UTC)
        hosts = [
            Host.objects.create(name=f"web{n}", url=f"http://web{n}:8001", token="t" * 20) for n in range(2)
        ]
        for n, host in enumerate(hosts):
            for day in (date(2026, 3, 2), date(2026, 3, 3 + n)):
                for ip, is_address in (("203.0.113.1", True), ("UNKNOWN", False)):
                    HostSource.objects.create(host=host, day=day, ip=ip, is_address=is_address, sessions=n + 1,
                                              failed_attempts=3, accepted=n, users=["root"], first_seen=seen,
                                              last_seen=seen)  # fmt: skip
        apps = self.migrate(TOTALS)
        totals = {
            row.ip: (row.is_address, row.host_days, row.sessions, row.failed_attempts, row.accepted)
            for row in apps.get_model("inventory_app", "FleetAddressTotal").objects.all()
        }
        # Each host on two days: four host days, connections 1 + 1 + 2 + 2.
        expected = (4, 6, 12, 2)
        self.assertEqual(totals, {"203.0.113.1": (True, *expected), "UNKNOWN": (False, *expected)})


def executor_leaf():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()
