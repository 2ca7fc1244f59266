"""Two hosts' logins as the project's own agents serve them (RealAgent: each in processes of its
own, with its own log and database), polled over HTTP: what the dashboard's login lists and the
central API's are tested on."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from collector.tests.logs import brute_force, login, syslog
from inventory_app import polling
from inventory_app.models import OK

from .agents import RealAgent

# Failed four passwords on web1, then logged in on web2: a login after failures.
ATTACKER = "198.51.100.7"
# Logged in with a key on web1 and on web2, never failed.
OFFICE = "192.0.2.10"
# Logged in on web1 and failed there only afterwards: not after failures.
LATE = "203.0.113.9"
HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
KEY = "ED25519 SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
# admin\u202etxt.exe would read "adminexe.txt"; a zero-width space hides in "ro\u200bot".
SPOOFS = ("admin\u202etxt.exe", "ro\u200bot")


def local_now() -> datetime:
    """Now as the log's clock shows it (naive local time, as syslog writes)."""
    return timezone.localtime().replace(tzinfo=None, microsecond=0)


def open_login(start: datetime, pid: int, ip: str, user: str) -> list[str]:
    """A password login whose end is not in the log yet (it is still open)."""
    port = 50000 + pid % 10000
    return [
        syslog(start, pid, f"Accepted password for {user} from {ip} port {port} ssh2"),
        syslog(start, pid, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
    ]


def key_login(start: datetime, pid: int, ip: str, user: str, length: timedelta) -> list[str]:
    """A key login as OpenSSH 9 logs it (the key's fingerprint), and its end `length` later."""
    lines = login(start, pid, pid + 100, ip, user, length)
    lines[0] = lines[0].replace("ED25519 SHA256:abc", KEY)
    return lines


def fleet_logs(now: datetime) -> dict[str, list[str]]:
    """Each host's log, in time order (the last login ten minutes before `now`)."""
    minutes = lambda n: now - timedelta(minutes=n)  # noqa: E731
    return {
        "web1": open_login(minutes(50), 102, LATE, SPOOFS[0])
        + brute_force(minutes(40), 100, ATTACKER, "root", attempts=4)
        + key_login(minutes(30), 101, OFFICE, "deploy", timedelta(minutes=5))
        + brute_force(minutes(20), 103, LATE, "admin"),
        "web2": key_login(minutes(15), 301, OFFICE, SPOOFS[1], timedelta(seconds=75))
        + open_login(minutes(10), 300, ATTACKER, HOSTILE),
    }


def start_agents() -> list[RealAgent]:
    """web1's and web2's agents, started, each having read its log; stop() each when done."""
    return [RealAgent(name, lines).start() for name, lines in fleet_logs(local_now()).items()]


def poll(agents: list[RealAgent]) -> None:
    for agent in agents:
        state = polling.poll_host(agent.host().pk)
        assert state == OK, agent.host().last_error
