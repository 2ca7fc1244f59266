"""Building real-looking sshd log lines for tests (the project's own fixtures)."""

from __future__ import annotations

from datetime import datetime, timedelta


def syslog(ts: datetime, pid: int, message: str, host: str = "web1", program: str = "sshd") -> str:
    """A classic syslog line as rsyslog writes auth.log: `Mar  3 00:17:22 web1 sshd[123]: msg`."""
    return f"{ts:%b} {ts.day:2d} {ts:%H:%M:%S} {host} {program}[{pid}]: {message}"


def brute_force(start: datetime, pid: int, ip: str, user: str, attempts: int = 3) -> list[str]:
    """An invalid-user guessing connection, as OpenSSH 8/9 logs it."""
    port = 40000 + pid % 20000
    t = start
    lines = [syslog(t, pid, f"Invalid user {user} from {ip} port {port}")]
    for _ in range(attempts):
        t += timedelta(seconds=2)
        lines.append(syslog(t, pid, "pam_unix(sshd:auth): check pass; user unknown"))
        lines.append(syslog(t, pid, f"Failed password for invalid user {user} from {ip} port {port} ssh2"))
    t += timedelta(seconds=1)
    lines.append(syslog(t, pid, f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"))
    lines.append(syslog(t, pid, f"Disconnected from invalid user {user} {ip} port {port} [preauth]"))
    return lines


def login(
    start: datetime,
    pid: int,
    child: int,
    ip: str,
    user: str = "deploy",
    length: timedelta = timedelta(minutes=5),
) -> list[str]:
    """A successful key login; the session's child process logs the disconnect (post-auth)."""
    port = 50000 + pid % 10000
    end = start + length
    return [
        syslog(start, pid, f"Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:abc"),
        syslog(start, pid, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
        syslog(end, child, f"Received disconnect from {ip} port {port}:11: disconnected by user"),
        syslog(end, child, f"Disconnected from user {user} {ip} port {port}"),
        syslog(end, pid, f"pam_unix(sshd:session): session closed for user {user}"),
    ]


def scanner(start: datetime, pid: int, ip: str) -> list[str]:
    return [syslog(start, pid, f"Connection closed by {ip} port {30000 + pid % 30000} [preauth]")]


def sample_log(start: datetime, connections: int = 60) -> list[str]:
    """A mixed log with PID reuse, a login crossing midnight, repeats and noise, in time order."""
    timed: list[tuple[datetime, int, str]] = []
    seq = 0

    def add(lines: list[str], first: datetime) -> None:
        nonlocal seq
        for offset, text in enumerate(lines):
            # Keep each connection's own order; interleave connections by start time.
            timed.append((first, seq * 100 + offset, text))
        seq += 1

    t = start
    for n in range(connections):
        pid = 1000 + n % 25  # PIDs come back: reuse after the connection ended
        ip = f"203.0.113.{n % 17 + 1}"
        if n % 5 == 0:
            add(login(t, pid + 5000, pid + 6000, ip, length=timedelta(hours=1)), t)
        elif n % 3 == 0:
            add(scanner(t, pid, ip), t)
        else:
            add(brute_force(t, pid, ip, f"user{n % 7}"), t)
        t += timedelta(minutes=13)
    timed.sort()
    lines = [text for _, _, text in timed]
    lines.insert(
        3,
        f"{start:%b} {start.day:2d} {start:%H:%M:%S} web1 CRON[77]: pam_unix(cron:session): session opened for user root",
    )
    lines.insert(
        5, f"{start:%b} {start.day:2d} {start:%H:%M:%S} web1 sshd[1]: Server listening on 0.0.0.0 port 22."
    )
    return lines


def today_lines(pid: int, ip: str) -> list[str]:
    """A brute force and a login from `ip`, early today (in TIME_ZONE's today of the caller)."""
    from django.utils import timezone

    start = datetime.combine(timezone.localdate(), datetime.min.time()) + timedelta(hours=1)
    return brute_force(start, pid, ip, "admin") + login(start, pid + 1, pid + 2, ip)
