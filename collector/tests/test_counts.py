"""What the agent counts as a day's distinct sources, and lists as its sources: the address sshd
wrote over PAM's host name, a name only where no address was ever written, and the addresses
sshd's listener refused (OpenSSH 9.8+ PerSourcePenalties), each read from a real file."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.test import TestCase, override_settings

from collector.counts import day_detail, day_rows
from collector.models import DailySource
from collector.retention import prune

from .helpers import write_log
from .logs import syslog

DAY = date(2026, 3, 2)
START = datetime(2026, 3, 2, 9, 0, 0)
PAM = "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={}  user={}"


def later(seconds: int) -> datetime:
    return START + timedelta(seconds=seconds)


# RHEL with UseDNS yes: PAM's line, with the verified reverse name, comes before sshd's own.
NAMED_THEN_ADDRESS = [
    syslog(START, 4801, PAM.format("host-203-0-113-9.example.net", "root")),
    syslog(START, 4801, "Failed password for root from 203.0.113.9 port 40184 ssh2"),
    syslog(later(1), 4801, "Connection closed by authenticating user root 203.0.113.9 port 40184 [preauth]"),
]
# A connection whose lines name only the host (sshd's own lines filtered or lost).
NAME_ONLY = [
    syslog(later(5), 4802, PAM.format("host-198-51-100-20.example.org", "admin")),
    syslog(
        later(6),
        4802,
        "PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
        "rhost=host-198-51-100-20.example.org  user=admin",
    ),
]
# The listener penalises an address it already saw, and drops one that never got a process.
LISTENER = [
    syslog(
        later(7),
        900,
        "srclimit_penalise: ipv4: new 203.0.113.9/32 deferred penalty of 30 seconds for penalty: failed authentication",
    ),
    syslog(
        later(8),
        900,
        "drop connection #0 from [192.0.2.77]:51312 on [192.0.2.1]:22 penalty: exceeded LoginGraceTime",
    ),
]
# Twenty minutes later: the name-only connection is long over.
SCANNER = [syslog(later(1200), 4803, "Connection closed by 203.0.113.50 port 61000 [preauth]")]


@override_settings(TIME_ZONE="UTC")
class DistinctSourceTests(TestCase):
    def setUp(self):
        write_log(NAMED_THEN_ADDRESS + NAME_ONLY + LISTENER + SCANNER)

    def sources(self) -> dict:
        return {
            row["ip"]: [row["sessions"], row["failed_attempts"], row["accepted"]]
            for row in DailySource.objects.filter(day=DAY).values()
        }

    def test_it_takes_the_address_sshd_wrote_over_pams_host_name(self):
        sources = self.sources()
        self.assertEqual(sources["203.0.113.9"], [1, 1, 0])
        self.assertNotIn("host-203-0-113-9.example.net", sources)

    def test_it_lists_a_host_name_only_where_no_address_was_written_and_never_counts_it(self):
        self.assertEqual(self.sources()["host-198-51-100-20.example.org"], [1, 0, 0])
        detail = day_detail(DAY)
        self.assertEqual(detail["sessions"], 3)
        # 203.0.113.9 and 203.0.113.50: not the name, not the address the listener dropped.
        self.assertEqual(detail["unique_sources"], 2)
        self.assertEqual(day_rows(DAY, DAY)[0]["unique_sources"], 2)

    def test_it_lists_addresses_the_listener_refused_without_a_connection(self):
        sources = self.sources()
        self.assertEqual(sources["192.0.2.77"], [0, 0, 0])
        self.assertEqual(day_detail(DAY)["sessions"], 3)

    def test_it_keeps_the_distinct_count_when_detail_is_pruned(self):
        with self.settings(ALPHA_RETAIN_DETAIL_DAYS=10):
            prune(DAY + timedelta(days=30), 10)
        self.assertFalse(DailySource.objects.filter(day=DAY).exists())
        self.assertEqual(day_detail(DAY)["unique_sources"], 2)
