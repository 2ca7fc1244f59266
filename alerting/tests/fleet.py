"""Shared by the rule tests: the log's clock, and real agents for a fleet of hosts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.test import TransactionTestCase
from django.utils import timezone

from inventory_app import polling
from inventory_app.tests.agents import RealAgent


def local_now() -> datetime:
    """Now as the log's clock shows it (naive local time, as syslog writes)."""
    return timezone.localtime().replace(tzinfo=None, microsecond=0)


class RealAgentsTestCase(TransactionTestCase):
    def agents(self, logs: dict[str, list[str]]) -> dict[str, RealAgent]:
        """Start one real agent per host name, concurrently, each having read its own log."""
        with ThreadPoolExecutor(len(logs)) as pool:
            started = dict(zip(logs, pool.map(lambda item: RealAgent(*item).start(), logs.items())))
        for agent in started.values():
            self.addCleanup(agent.stop)
        return started

    def poll(self, agents: dict[str, RealAgent]) -> None:
        for agent in agents.values():
            self.assertEqual(polling.poll_host(agent.host().pk), "ok", agent.host().last_error)
