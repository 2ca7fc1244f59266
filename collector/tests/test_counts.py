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


TOKEN = "t" * 32
KEY = "ED25519 SHA256:Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg"
# An address guesses passwords, then gets in with one; a key login; a password login still open.
LOGINS = [
    syslog(START, 5001, "Failed password for root from 198.51.100.7 port 40001 ssh2"),
    syslog(later(2), 5001, "Failed password for root from 198.51.100.7 port 40001 ssh2"),
    syslog(later(4), 5001, "Accepted password for root from 198.51.100.7 port 40001 ssh2"),
    syslog(later(4), 5001, "pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)"),
    syslog(later(64), 5002, "Received disconnect from 198.51.100.7 port 40001:11: disconnected by user"),
    syslog(later(64), 5001, "pam_unix(sshd:session): session closed for user root"),
    syslog(later(100), 5003, f"Accepted publickey for <b>alice</b> from 2001:db8::5 port 50002 ssh2: {KEY}"),
    syslog(
        later(100), 5003, "pam_unix(sshd:session): session opened for user <b>alice</b>(uid=1000) by (uid=0)"
    ),
    syslog(later(200), 5004, "Accepted keyboard-interactive/pam for deploy from 192.0.2.40 port 50003 ssh2"),
]


@override_settings(TIME_ZONE="UTC", ALPHA_AGENT_TOKEN=TOKEN)
class AcceptedLoginTests(TestCase):
    def setUp(self):
        write_log(LOGINS)
        self.client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"

    def test_it_serves_every_login_of_a_day_in_time_order_page_by_page(self):
        seen, url = [], f"/api/v1/logins/{DAY}/accepted/?page_size=2"
        while url:
            page = self.client.get(url).json()
            seen += page["results"]
            url = page["next"]
        self.assertEqual(
            [(s["user"], s["ip"], s["port"], s["method"], s["key"]) for s in seen],
            [("root", "198.51.100.7", 40001, "password", ""),
             ("<b>alice</b>", "2001:db8::5", 50002, "publickey", KEY),
             ("deploy", "192.0.2.40", 50003, "keyboard-interactive/pam", "")],
        )  # fmt: skip
        self.assertEqual(seen[0]["at"], "2026-03-02T09:00:04Z")
        # The first ended when its session closed; the others are still open.
        self.assertEqual([s["ended_at"] for s in seen], ["2026-03-02T09:01:04Z", None, None])
        self.assertEqual(self.client.get("/api/v1/logins/2026-03-03/accepted/").json()["results"], [])
        self.assertEqual(self.client.get("/api/v1/logins/2026-02-31/accepted/").status_code, 400)

    def test_it_records_a_logins_end_read_in_a_later_batch(self):
        write_log([syslog(later(300), 5003, "pam_unix(sshd:session): session closed for user <b>alice</b>")])
        page = self.client.get(f"/api/v1/logins/{DAY}/accepted/").json()["results"]
        self.assertEqual(page[1]["ended_at"], "2026-03-02T09:05:00Z")

    def test_it_gives_each_source_when_it_failed_and_first_logged_in(self):
        rows = {s["ip"]: s for s in self.client.get(f"/api/v1/sources/{DAY}/").json()["results"]}
        guesser = rows["198.51.100.7"]
        self.assertEqual(
            (guesser["first_failed"], guesser["last_failed"], guesser["first_accepted"]),
            ("2026-03-02T09:00:00Z", "2026-03-02T09:00:02Z", "2026-03-02T09:00:04Z"),
        )
        self.assertEqual(
            (rows["192.0.2.40"]["first_failed"], rows["192.0.2.40"]["last_failed"]), (None, None)
        )

    def test_it_needs_the_token(self):
        self.client.defaults.pop("HTTP_AUTHORIZATION")
        self.assertEqual(self.client.get(f"/api/v1/logins/{DAY}/accepted/").status_code, 401)
