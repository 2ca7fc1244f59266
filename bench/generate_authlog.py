"""Write a realistic classic-syslog auth.log and the exact per-day counts it should produce.

    .venv/bin/python bench/generate_authlog.py [--lines 1000000] [--days 4] [--seed 1]
                                               [--out bench/out/auth.log] [--truth PATH]

The log is built from a model of what happens on an Internet-facing host: brute-force campaigns
from a pool of a few thousand attacker addresses, root password guessing, scanners, a few real
logins (whose post-auth child process logs the disconnect), plus CRON/sudo/systemd-logind noise.
Every process gets a PID from a counter that wraps at 32768 like Linux's default pid_max, so PIDs
are reused several times a day, but never while an earlier process's lines are less than ~11
minutes old (the agent forgets a PID idle for 10 minutes of log time, so a faster reuse would be
ambiguous even for a perfect reader).

Because the counts come from the model, not from parsing the output, the truth file is an
independent answer to compare the agent with. It also holds what the "original design" (count
distinct sshd PIDs per calendar day) must answer on this log, and why that differs.

Timestamps are in UTC (run the agent with TIME_ZONE=UTC) and end before today, since classic
syslog lines carry no year and the agent places them in the current year unless in the future.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import os
import random
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

# The project's contract (pure Python) names the counts the truth is kept in.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from collector.contract import TALLIED  # noqa: E402

PID_MAX = 32768  # Linux default /proc/sys/kernel/pid_max: PIDs go up to 32767 ...
PID_WRAP_TO = 300  # ... and wrap to 300 (RESERVED_PIDS), like the kernel.
# A PID is handed out again only once its previous process's last line is this old. The agent
# forgets a PID after 600 s idle; the extra minute keeps us clear of second rounding.
PID_QUARANTINE = 660
LISTENER_PID = 801  # the listening sshd: long-lived, never a connection
LOGIND_PID = 612  # systemd-logind

DEFAULT_NON_SSHD = 0.12  # share of CRON/sudo/logind lines (real auth.logs: ~10-15% here)

ATTACKER_USERS = (
    "admin", "test", "user", "ubuntu", "oracle", "postgres", "git", "ftpuser", "guest", "pi",
    "support", "debian", "centos", "mysql", "hadoop", "jenkins", "deploy1", "dev", "www",
    "ubnt", "tomcat", "nagios", "minecraft", "steam", "odoo", "elastic", "user1", "test2",
    "administrator", "teamspeak", "vagrant", "ansible", "docker", "ec2-user", "solana", "sol",
    "", "12345", "Admin", "TEST", "backup", "ftp", "student", "sysadmin", "es", "kafka",
)  # fmt: skip
CRON_COMMANDS = (
    "command -v debian-sa1 > /dev/null && debian-sa1 1 1",
    "cd / && run-parts --report /etc/cron.hourly",
    "[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi",
    "/usr/local/bin/backup-db.sh >/dev/null 2>&1",
    "/usr/bin/certbot -q renew",
)
SUDO_COMMANDS = (
    "/usr/lib/nagios/plugins/check_disk -w 10% -c 5%",
    "/usr/lib/nagios/plugins/check_procs -w 250 -c 400",
    "/usr/bin/systemctl is-active nginx",
    "/usr/sbin/iptables -L -n",
)


class Proc:
    """One process that writes lines: an sshd connection, a post-auth child, a cron job..."""

    __slots__ = ("alloc", "conn", "extra_pids", "lines", "pid", "prog")

    def __init__(self, prog: str, alloc: float, lines: list, conn: dict | None = None, extra_pids: int = 0):
        self.prog = prog
        self.alloc = alloc  # when the PID is taken (fork), <= its first line
        self.lines = lines  # [(epoch seconds float, message)], in order
        self.conn = conn  # truth record if this process is a counted connection
        self.extra_pids = extra_pids  # PIDs its helpers use up (privsep child, shells)
        self.pid: int | None = None


class Model:
    def __init__(self, *, lines: int, days: int, end: date, seed: int, host: str, non_sshd: float):
        self.rng = random.Random(seed)
        self.target_lines = lines
        self.days = days
        self.host = host
        self.non_sshd = non_sshd
        first = end - timedelta(days=days - 1)
        self.start = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()
        self.end = self.start + days * 86400
        self.procs: list[Proc] = []
        self.sshd_lines = 0
        self.other_lines = 0
        self.logind_session = 100
        rng = self.rng
        # A few thousand attackers; a handful of them do most of the work (Zipf-like weights).
        self.attackers = [self._random_ip() for _ in range(3000)]
        weights = [1 / (rank + 1) ** 0.8 for rank in range(len(self.attackers))]
        self.attacker_cum = list(itertools.accumulate(weights))
        self.legit_ips = ["198.51.100.23", "198.51.100.24", "192.0.2.77", "2001:db8:4400::1:17"]
        self.legit_users = ("deploy", "deploy", "deploy", "alice", "bob")
        self.key_fp = "".join(
            rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(43)
        )

    # -- helpers --

    def _random_ip(self) -> str:
        rng = self.rng
        if rng.random() < 0.02:  # a few IPv6 attackers
            return f"2a0{rng.randint(1, 9)}:{rng.randint(0, 0xFFFF):x}:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"
        while True:
            a = rng.randint(1, 223)
            if a not in (10, 127, 169, 172, 192):
                return f"{a}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

    def _attacker(self) -> str:
        x = self.rng.random() * self.attacker_cum[-1]
        return self.attackers[bisect.bisect_left(self.attacker_cum, x)]

    def _port(self) -> int:
        return self.rng.randint(1024, 65535)

    def _add_conn(
        self,
        lines: list,
        *,
        ip: str,
        accepted: bool = False,
        failed: int = 0,
        invalid: bool = False,
        extra_pids: int = 1,
    ) -> Proc:
        """A per-connection sshd process; extra_pids=1 is its privilege-separated preauth child."""
        conn = {"ip": ip, "accepted": accepted, "failed": failed, "invalid": invalid, "start": lines[0][0]}
        proc = Proc("sshd", lines[0][0], lines, conn, extra_pids)
        self.procs.append(proc)
        self.sshd_lines += len(lines)
        return proc

    # -- connection kinds --

    def invalid_user(self, t: float, ip: str) -> float:
        """Guessing a user that does not exist; returns when the connection ended."""
        rng = self.rng
        port, user = self._port(), rng.choice(ATTACKER_USERS)
        lines = [(t, f"Invalid user {user} from {ip} port {port}")]
        attempts = 1 if rng.random() < 0.8 else 2
        for _ in range(attempts):
            t += rng.uniform(0.05, 0.6)
            lines.append((t, "pam_unix(sshd:auth): check pass; user unknown"))
            lines.append(
                (
                    t,
                    f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}",
                )
            )
            t += rng.uniform(1.5, 3.5)
            lines.append((t, f"Failed password for invalid user {user} from {ip} port {port} ssh2"))
        t += rng.uniform(0.1, 1.0)
        if rng.random() < 0.85:
            lines.append((t, f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"))
            lines.append((t, f"Disconnected from invalid user {user} {ip} port {port} [preauth]"))
        else:
            lines.append((t, f"Connection closed by invalid user {user} {ip} port {port} [preauth]"))
        self._add_conn(lines, ip=ip, failed=attempts, invalid=True)
        return t

    def root_guess(self, t: float, ip: str, attempts: int | None = None) -> float:
        """Password guessing for root, several attempts on one connection."""
        rng = self.rng
        port = self._port()
        attempts = attempts or rng.choice((1, 2, 2, 3, 3, 4, 5, 6, 6))
        rhost = f"rhost={ip}  user=root"
        t += rng.uniform(0.05, 0.5)
        lines = [
            (t, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= {rhost}")
        ]
        for _ in range(attempts):
            t += rng.uniform(1.5, 4.0)
            lines.append((t, f"Failed password for root from {ip} port {port} ssh2"))
        t += rng.uniform(0.05, 0.5)
        if attempts >= 6:
            lines.append(
                (
                    t,
                    f"error: maximum authentication attempts exceeded for root from {ip} port {port} ssh2 [preauth]",
                )
            )
            lines.append(
                (
                    t,
                    f"Disconnecting authenticating user root {ip} port {port}: Too many authentication failures [preauth]",
                )
            )
        else:
            lines.append((t, f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"))
            lines.append((t, f"Disconnected from authenticating user root {ip} port {port} [preauth]"))
        if attempts > 1:
            lines.append(
                (
                    t,
                    f"PAM {attempts - 1} more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= {rhost}",
                )
            )
        self._add_conn(lines, ip=ip, failed=attempts)
        return t

    def scanner(self, t: float, ip: str) -> float:
        port = self._port()
        if self.rng.random() < 0.6:
            msg = f"Connection closed by {ip} port {port} [preauth]"
        else:
            msg = f"Did not receive identification string from {ip} port {port}"
        self._add_conn([(t, msg)], ip=ip)
        return t

    def login(self, t: float, length: float | None = None) -> None:
        """A real login: the connection's process (the monitor) logs Accepted and the session
        lines; its post-auth child logs the disconnect. Sometimes a mistyped password first."""
        rng = self.rng
        ip, user = rng.choice(self.legit_ips), rng.choice(self.legit_users)
        port = self._port()
        if length is None:
            # Median ~4 minutes, a long tail of sessions lasting hours.
            length = min(rng.lognormvariate(math.log(240), 1.4), 8 * 3600)
        lines = []
        failed = 0
        if rng.random() < 0.15:
            lines.append(
                (
                    t,
                    f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
                )
            )
            t += rng.uniform(2, 4)
            lines.append((t, f"Failed password for {user} from {ip} port {port} ssh2"))
            failed = 1
            t += rng.uniform(3, 8)
            lines.append((t, f"Accepted password for {user} from {ip} port {port} ssh2"))
        else:
            lines.append(
                (t, f"Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:{self.key_fp}")
            )
        t += 0.01
        uid = 1000 + self.legit_users.index(user)
        lines.append((t, f"pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)"))
        forked = t
        end = t + length
        lines.append((end + 0.02, f"pam_unix(sshd:session): session closed for user {user}"))
        self._add_conn(lines, ip=ip, accepted=True, failed=failed)
        # The post-auth child is forked at login, but writes only when the user disconnects.
        child = [
            (end, f"Received disconnect from {ip} port {port}:11: disconnected by user"),
            (end + 0.01, f"Disconnected from user {user} {ip} port {port}"),
        ]
        self.procs.append(Proc("sshd", forked, child))
        self.sshd_lines += len(child)
        # systemd-logind's view of the same session (noise for the agent, but realistic).
        self.logind_session += 1
        n = self.logind_session
        logind = [
            (t + 0.005, f"New session {n} of user {user}."),
            (end + 0.03, f"Session {n} logged out. Waiting for processes to exit."),
            (end + 0.04, f"Removed session {n}."),
        ]
        # During the session the user often runs sudo (auth.log noise).
        if rng.random() < 0.4 and length > 30:
            s = t + rng.uniform(5, length - 5)
            sudo = [
                (
                    s,
                    f"   {user} : TTY=pts/{rng.randint(0, 3)} ; PWD=/home/{user} ; USER=root ; COMMAND={rng.choice(SUDO_COMMANDS)}",
                ),
                (
                    s + 0.01,
                    f"pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid={uid})",
                ),
                (s + 0.5, "pam_unix(sudo:session): session closed for user root"),
            ]
            self.procs.append(Proc("sudo", s, sudo))
            self.other_lines += len(sudo)
        self.procs.append(Proc("systemd-logind", t, logind))
        self.other_lines += len(logind)

    # -- traffic --

    def campaign(self) -> None:
        """One attacker hammering: connections started a few seconds apart, overlapping."""
        rng = self.rng
        ip = self._attacker()
        t = rng.uniform(self.start, self.end - 60)
        n = 1 + int(rng.expovariate(1 / 15))
        root_share = rng.choice((0.0, 0.2, 0.5, 1.0))
        for _ in range(n):
            if t >= self.end - 60:
                break
            if rng.random() < root_share:
                self.root_guess(t, ip)
            else:
                self.invalid_user(t, ip)
            t += rng.uniform(0.5, 8.0)

    def midnight(self) -> None:
        """Make sure connections cross every midnight inside the span: slow root guessers
        starting in the last seconds of a day, and logins running through midnight."""
        rng = self.rng
        for boundary in range(1, self.days):
            midnight = self.start + boundary * 86400
            for _ in range(20):
                self.root_guess(midnight - rng.uniform(1, 25), self._attacker(), attempts=6)
            for _ in range(3):
                self.login(midnight - rng.uniform(600, 3000), length=rng.uniform(3600, 7200))

    def listener(self) -> None:
        """The listening sshd re-reads its config every night (logrotate/package updates)."""
        for day in range(self.days):
            t = self.start + day * 86400 + 6 * 3600 + 25 * 60 + 3.5
            lines = [
                (t, "Received SIGHUP; restarting."),
                (t + 0.2, "Server listening on 0.0.0.0 port 22."),
                (t + 0.21, "Server listening on :: port 22."),
            ]
            self.procs.append(Proc("sshd", t, lines))
            self.sshd_lines += len(lines)

    def noise(self, budget: int) -> None:
        """Exactly `budget` non-sshd lines: cron jobs, monitoring sudo, the odd odd one."""
        rng = self.rng
        while budget > 0:
            t = rng.uniform(self.start, self.end - 60)
            t -= t % 60  # cron starts jobs on the minute
            r = rng.random()
            if budget >= 3 and r < 0.6:
                cmd = rng.choice(CRON_COMMANDS)
                lines = [
                    (t + 0.1, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
                    (t + 0.12, f"(root) CMD ({cmd})"),
                    (t + rng.uniform(0.2, 30), "pam_unix(cron:session): session closed for user root"),
                ]
                self.procs.append(Proc("CRON", t, lines, extra_pids=rng.randint(1, 3)))
            elif budget >= 3 and r < 0.95:
                t += rng.uniform(1, 50)
                if rng.random() < 0.01:
                    # Mentions sshd without being sshd's line: a reader must not be fooled.
                    cmd = "/usr/bin/systemctl status sshd"
                else:
                    cmd = rng.choice(SUDO_COMMANDS)
                lines = [
                    (t, f"  nagios : PWD=/ ; USER=root ; COMMAND={cmd}"),
                    (t + 0.01, "pam_unix(sudo:session): session opened for user root(uid=0) by (uid=112)"),
                    (t + 0.2, "pam_unix(sudo:session): session closed for user root"),
                ]
                self.procs.append(Proc("sudo", t, lines))
            else:
                lines = [(t + 0.12, f"(root) CMD ({rng.choice(CRON_COMMANDS)})")]
                self.procs.append(Proc("CRON", t, lines, extra_pids=1))
            budget -= len(lines)
            self.other_lines += len(lines)

    def build(self) -> None:
        rng = self.rng
        self.listener()
        self.midnight()
        target_sshd = round(self.target_lines * (1 - self.non_sshd))
        while self.sshd_lines < target_sshd:
            r = rng.random()
            if r < 0.80:
                self.campaign()
            elif r < 0.97:
                # Scanners: mostly from the attacker pool, a few one-off addresses.
                ip = self._attacker() if rng.random() < 0.8 else self._random_ip()
                t = rng.uniform(self.start, self.end - 60)
                for _ in range(rng.randint(1, 3)):
                    t = self.scanner(t, ip) + rng.uniform(0.5, 20)
            else:
                self.login(rng.uniform(self.start, self.end - 60))
        self.noise(max(0, self.target_lines - self.sshd_lines - self.other_lines))
        self.assign_pids()

    def assign_pids(self) -> None:
        """Hand out PIDs in fork order from a wrapping counter, skipping PIDs still in use (or
        whose last line is under PID_QUARANTINE seconds old), as the kernel would (plus margin)."""
        busy_until = [-math.inf] * PID_MAX
        for reserved in range(PID_WRAP_TO):
            busy_until[reserved] = math.inf
        busy_until[LISTENER_PID] = busy_until[LOGIND_PID] = math.inf
        pid = self.rng.randint(2000, 30000)
        for proc in sorted(self.procs, key=lambda p: p.alloc):
            if proc.prog == "systemd-logind":
                proc.pid = LOGIND_PID
                continue
            if proc.prog == "sudo":
                continue  # sudo's syslog lines carry no PID; its fork is in extra_pids noise
            if proc.lines[0][1].startswith(("Received SIGHUP", "Server listening")):
                proc.pid = LISTENER_PID
                continue
            while busy_until[pid] + PID_QUARANTINE >= proc.alloc:
                pid = pid + 1 if pid + 1 < PID_MAX else PID_WRAP_TO
            proc.pid = pid
            busy_until[pid] = proc.lines[-1][0]
            # The PID and the helpers' PIDs (privsep child, cron's shell) are used up.
            for _ in range(1 + proc.extra_pids):
                pid = pid + 1 if pid + 1 < PID_MAX else PID_WRAP_TO

    # -- output --

    def write(self, path: str) -> int:
        """Sort every line by time (interleaving processes) and write classic syslog lines."""
        host = self.host
        timed = []
        for proc in self.procs:
            if proc.prog == "sudo":
                tag = "sudo:"
            else:
                tag = f"{proc.prog}[{proc.pid}]:"
            for t, msg in proc.lines:
                timed.append((t, tag, msg))
        timed.sort(key=lambda item: item[0])
        stamp_cache: dict[int, str] = {}
        with open(path, "w", encoding="utf-8", buffering=1 << 20) as out:
            for t, tag, msg in timed:
                second = int(t)
                stamp = stamp_cache.get(second)
                if stamp is None:
                    dt = datetime.fromtimestamp(second, UTC)
                    # Classic syslog: "Nov  3 07:01:02" (day padded with a space).
                    stamp = stamp_cache[second] = f"{dt:%b} {dt.day:2d} {dt:%H:%M:%S}"
                out.write(f"{stamp} {host} {tag} {msg}\n")
        return len(timed)

    def truth(self) -> dict:
        """Expected per-day counts, from the model (not from the written text)."""
        days: dict[str, dict] = defaultdict(lambda: dict.fromkeys(TALLIED, 0))
        sources: dict[str, set] = defaultdict(set)
        for proc in self.procs:
            conn = proc.conn
            if conn is None:
                continue
            day = _day(conn["start"])
            accepted, failed, invalid = bool(conn["accepted"]), conn["failed"], bool(conn["invalid"])
            # What this connection adds to each count, in the contract's order: a connection,
            # a login, its failed attempts, a failed connection, an invalid user, a scanner.
            adds = (
                1,
                accepted,
                failed,
                failed > 0 and not accepted,
                invalid,
                not (accepted or failed or invalid),
            )
            for name, value in zip(TALLIED, adds, strict=True):
                days[day][name] += int(value)
            sources[day].add(conn["ip"])
        out = []
        for day in sorted(days):
            out.append({"date": day, **days[day], "unique_sources": len(sources[day])})
        return {"host": self.host, "days": out}

    def original_design(self) -> dict:
        """What "distinct sshd PIDs per calendar day" answers here, and why it is wrong:
        post-auth children and the listener are counted, a connection with lines on two days is
        counted on both, and reused PIDs on one day collapse into one."""
        per_day: dict[str, dict] = defaultdict(
            lambda: {"pids": set(), "processes": 0, "not_connections": 0, "carried_over": 0}
        )
        for proc in self.procs:
            if proc.prog != "sshd":
                continue
            line_days = sorted({_day(t) for t, _ in proc.lines})
            start_day = _day(proc.lines[0][0]) if proc.conn is None else _day(proc.conn["start"])
            for day in line_days:
                entry = per_day[day]
                entry["pids"].add(proc.pid)
                entry["processes"] += 1
                if proc.conn is None:
                    entry["not_connections"] += 1
                elif day != start_day:
                    entry["carried_over"] += 1
        result = {}
        for day in sorted(per_day):
            entry = per_day[day]
            result[day] = {
                "distinct_pids": len(entry["pids"]),
                # = true sessions + not_connections + carried_over - pid_reuse_conflated
                "not_connections": entry["not_connections"],
                "carried_over": entry["carried_over"],
                "pid_reuse_conflated": entry["processes"] - len(entry["pids"]),
            }
        return result

    def stats(self) -> dict:
        conns = [p for p in self.procs if p.conn is not None]
        crossing = sum(1 for p in conns if _day(p.lines[0][0]) != _day(p.lines[-1][0]))
        sshd_pids = [p.pid for p in self.procs if p.prog == "sshd"]
        return {
            "connections": len(conns),
            "post_auth_children": sum(
                1 for p in self.procs if p.prog == "sshd" and p.conn is None and p.pid != LISTENER_PID
            ),
            "connections_crossing_midnight": crossing,
            "sshd_processes": len(sshd_pids),
            "distinct_sshd_pids": len(set(sshd_pids)),
            "sshd_lines": self.sshd_lines,
            "other_lines": self.other_lines,
        }


def _day(t: float) -> str:
    return datetime.fromtimestamp(int(t), UTC).date().isoformat()


def generate(
    path: str,
    *,
    lines: int = 1_000_000,
    days: int = 4,
    seed: int = 1,
    end: date | None = None,
    host: str = "web-01",
    non_sshd: float = DEFAULT_NON_SSHD,
    truth_path: str | None = None,
) -> dict:
    """Write the log to `path` and its truth to `truth_path` (default: path + .truth.json).
    Returns the truth dict (days, original_design, stats, ...)."""
    if end is None:
        end = datetime.now(UTC).date() - timedelta(days=1)  # whole days, all in the past
    model = Model(lines=lines, days=days, end=end, seed=seed, host=host, non_sshd=non_sshd)
    model.build()
    written = model.write(path)
    truth = model.truth()
    truth["original_design"] = model.original_design()
    truth["stats"] = {**model.stats(), "lines": written}
    truth["log"] = os.path.abspath(path)
    truth["time_zone"] = "UTC"
    with open(truth_path or path + ".truth.json", "w") as f:
        json.dump(truth, f, indent=1)
    return truth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--end", type=date.fromisoformat, help="last day (default: yesterday, UTC)")
    ap.add_argument("--host", default="web-01")
    ap.add_argument("--non-sshd", type=float, default=DEFAULT_NON_SSHD, help="share of non-sshd lines")
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "auth.log")
    )
    ap.add_argument("--truth", help="ground truth JSON (default: OUT.truth.json)")
    args = ap.parse_args()
    if args.days < 1 or args.lines < 1:
        ap.error("--lines and --days must be positive")
    if not 0 <= args.non_sshd < 1:
        ap.error("--non-sshd must be in [0, 1)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    started = time.monotonic()
    truth = generate(
        args.out,
        lines=args.lines,
        days=args.days,
        seed=args.seed,
        end=args.end,
        host=args.host,
        non_sshd=args.non_sshd,
        truth_path=args.truth,
    )
    s = truth["stats"]
    print(
        f"wrote {args.out}: {s['lines']:,} lines ({os.path.getsize(args.out) / 1e6:,.1f} MB) "
        f"in {time.monotonic() - started:.1f} s"
    )
    print(
        f"  sshd lines {s['sshd_lines']:,}, other lines {s['other_lines']:,} "
        f"({s['other_lines'] / s['lines']:.1%})"
    )
    print(
        f"  connections {s['connections']:,}, post-auth children {s['post_auth_children']:,}, "
        f"crossing midnight {s['connections_crossing_midnight']:,}, "
        f"sshd processes {s['sshd_processes']:,} on {s['distinct_sshd_pids']:,} distinct PIDs"
    )
    print(f"truth: {args.truth or args.out + '.truth.json'}")
    for row in truth["days"]:
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
