"""Demo data: a realistic sshd auth.log for a host named `demo`, so that a first run on a machine
without a readable log shows something true (run-system.sh). Pure Python, no Django.

The log holds brute force from roaming addresses, scanners, a few real logins from two offices,
and each day one address that fails several passwords and then logs in. All addresses are from
the documentation ranges (RFC 5737, RFC 3849): nothing real is named.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

HOST = "demo"
OFFICES = ("192.0.2.10", "192.0.2.11")
STAFF = ("deploy", "alice", "bob")
# Guessed user names, as the busiest botnets try them.
GUESSES = (
    "root",
    "admin",
    "test",
    "user",
    "ubuntu",
    "oracle",
    "postgres",
    "git",
    "pi",
    "ftp",
    "guest",
    "mysql",
)
# The address that guesses a password and gets in, once a day.
GUESSER = "198.51.100.77"


def roaming(rng: random.Random) -> str:
    """An attacker's address: most IPv4 from the documentation ranges, some IPv6."""
    if rng.random() < 0.08:
        return f"2001:db8:{rng.randrange(1, 0xFFFF):x}::{rng.randrange(1, 0xFFFF):x}"
    return f"{rng.choice(('198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}"


class DemoLog:
    """Connections as sshd writes them, in time order; `pid` goes up as a busy sshd's would."""

    def __init__(self, seed: int = 7):
        self.rng = random.Random(seed)
        self.pid = 20000

    def next_pid(self) -> int:
        # Up to Linux's default pid_max on 64-bit systems: no PID comes back within the demo.
        self.pid = 2000 if self.pid > 4_194_000 else self.pid + self.rng.randrange(1, 9)
        return self.pid

    def line(self, when: datetime, pid: int, message: str) -> str:
        return f"{when:%b} {when.day:2d} {when:%H:%M:%S} {HOST} sshd[{pid}]: {message}"

    def brute_force(self, start: datetime, ip: str) -> list[str]:
        pid, port, user = self.next_pid(), self.rng.randrange(30000, 65000), self.rng.choice(GUESSES)
        lines, when = [], start
        invalid = user not in ("root", "git")
        prefix = "invalid user " if invalid else ""
        who = "invalid" if invalid else "authenticating"
        if invalid:
            lines.append(self.line(when, pid, f"Invalid user {user} from {ip} port {port}"))
        for _ in range(self.rng.randint(1, 6)):
            when += timedelta(seconds=self.rng.randint(1, 4))
            lines.append(
                self.line(when, pid, f"Failed password for {prefix}{user} from {ip} port {port} ssh2")
            )
        when += timedelta(seconds=1)
        lines.append(self.line(when, pid, f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"))
        lines.append(
            self.line(
                when,
                pid,
                f"Disconnected from {who} user {user} {ip} port {port} [preauth]",
            )
        )
        return lines

    def scan(self, start: datetime, ip: str) -> list[str]:
        pid, port = self.next_pid(), self.rng.randrange(30000, 65000)
        kind = self.rng.random()
        if kind < 0.5:
            return [self.line(start, pid, f"Connection closed by {ip} port {port} [preauth]")]
        if kind < 0.8:
            return [self.line(start, pid, f"Connection reset by {ip} port {port} [preauth]")]
        return [self.line(start, pid, f"Did not receive identification string from {ip} port {port}")]

    def login(
        self, start: datetime, ip: str, user: str, method: str = "publickey", failures: int = 0
    ) -> list[str]:
        pid, child, port = self.next_pid(), self.next_pid(), self.rng.randrange(40000, 65000)
        lines, when = [], start
        for _ in range(failures):
            lines.append(self.line(when, pid, f"Failed password for {user} from {ip} port {port} ssh2"))
            when += timedelta(seconds=self.rng.randint(2, 5))
        detail = (
            " ssh2: ED25519 SHA256:Q3d6m0D7yb0dF6bT6KXW0n3c0n8l0h3bS4i5Qz7Yk9A"
            if method == "publickey"
            else " ssh2"
        )
        lines.append(self.line(when, pid, f"Accepted {method} for {user} from {ip} port {port}{detail}"))
        lines.append(
            self.line(
                when, pid, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"
            )
        )
        end = when + timedelta(minutes=self.rng.randint(2, 90))
        lines.append(
            self.line(end, child, f"Received disconnect from {ip} port {port}:11: disconnected by user")
        )
        lines.append(self.line(end, child, f"Disconnected from user {user} {ip} port {port}"))
        lines.append(self.line(end, pid, f"pam_unix(sshd:session): session closed for user {user}"))
        return lines

    def connection(self, when: datetime) -> list[str]:
        """One connection of a busy host's mix."""
        pick = self.rng.random()
        if pick < 0.55:
            return self.brute_force(when, roaming(self.rng))
        if pick < 0.93:
            return self.scan(when, roaming(self.rng))
        return self.login(when, self.rng.choice(OFFICES), self.rng.choice(STAFF))

    def history(self, end: datetime, days: int) -> list[str]:
        """The last `days` days up to `end`, in time order."""
        timed: list[tuple[datetime, int, str]] = []
        start = end - timedelta(days=days)
        day = start
        order = 0
        while day < end:
            # 150 to 500 connections a day, busier on some days: an attack comes and goes.
            for _ in range(self.rng.randint(150, 500)):
                when = day + timedelta(seconds=self.rng.randrange(86400))
                if when < end:
                    for line in self.connection(when):
                        timed.append((when, order, line))
                        order += 1
            guess = day + timedelta(seconds=self.rng.randrange(86400))
            if guess < end:
                for line in self.login(guess, GUESSER, "admin", method="password", failures=4):
                    timed.append((guess, order, line))
                    order += 1
            day += timedelta(days=1)
        timed.sort()
        return [line for _, _, line in timed]

    def live(self, now) -> Iterator[tuple[float, list[str]]]:
        """(seconds to wait, lines) for ever: a connection every few seconds, as they happen."""
        while True:
            wait = self.rng.uniform(1.0, 12.0)
            yield wait, self.connection(now() + timedelta(seconds=wait))
