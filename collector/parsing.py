"""Turn sshd's log lines into events. Pure Python: no Django, no I/O.

Everything in a log line after the header is attacker-controlled in part (user names), so the
source address is always read from the trailing part that sshd itself wrote, anchored at the end
of the message, never from the first " from " in the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo

# A line longer than this is cut before parsing and counted as malformed: sshd's own lines are
# well under 2 KB, and an unbounded line must not cost unbounded memory.
MAX_LINE_LENGTH = 8192

PROGRAMS = ("sshd", "sshd-session", "sshd-auth")

MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "Jan",
            "Feb",
            "Mar",
            "Apr",
            "May",
            "Jun",
            "Jul",
            "Aug",
            "Sep",
            "Oct",
            "Nov",
            "Dec",
        ),
        1,
    )
}

# Phases decide what a line means for connection accounting (see sessions.py):
OPEN = "open"  # starts authenticating: opens a connection, even on a PID whose connection ended
PRE = "pre"  # pre-auth line: opens a connection only on a PID not seen recently
POST = "post"  # only ever written after login (post-auth child, session lines): never opens one
LISTENER = "listener"  # the listening daemon itself: never a connection
ATTACH = "attach"  # belongs to a known connection if there is one, never opens one

SUCCESS = "success"
FAILURE = "failure"

# kind -> (phase, outcome)
KINDS: dict[str, tuple[str, str | None]] = {
    "accepted": (OPEN, SUCCESS),
    "failed": (OPEN, FAILURE),
    "invalid_user": (OPEN, FAILURE),
    "userauth_request_invalid": (OPEN, None),
    "pam_auth_failure": (OPEN, FAILURE),
    "pam_user_unknown": (OPEN, None),
    "not_allowed": (OPEN, FAILURE),
    "root_refused": (OPEN, FAILURE),
    "connection_from": (OPEN, None),
    "pam_more_failures": (PRE, FAILURE),
    "max_auth_attempts": (PRE, FAILURE),
    "too_many_auth_failures": (PRE, FAILURE),
    "received_disconnect": (PRE, None),
    "disconnected": (PRE, None),
    "connection_closed": (PRE, None),
    "connection_reset": (PRE, None),
    "no_identification": (PRE, None),
    "kex_error": (PRE, None),
    "banner_error": (PRE, None),
    "bad_protocol": (PRE, None),
    "unable_to_negotiate": (PRE, None),
    "timeout": (PRE, None),
    "reverse_mapping": (PRE, None),
    "refused_connect": (PRE, None),
    "received_disconnect_user": (POST, None),
    "disconnected_user": (POST, None),
    "connection_closed_postauth": (POST, None),
    "session_opened": (POST, None),
    "session_closed": (POST, None),
    "subsystem": (POST, None),
    "server_listening": (LISTENER, None),
    "received_signal": (LISTENER, None),
    "received_sighup": (LISTENER, None),
    "info": (ATTACH, None),
    "unknown": (ATTACH, None),
    "repeat": (ATTACH, None),
}


@dataclass(slots=True)
class Event:
    """One sshd log event. `count` > 1 when a repeat line stands for several."""

    ts: datetime  # aware, in the zone days are counted in
    host: str
    program: str
    pid: int | None
    kind: str
    user: str | None = None
    source_ip: str | None = None
    source_port: int | None = None
    method: str | None = None
    count: int = 1
    invalid_user: bool = False
    message: str = ""
    boot_id: str = ""  # the journal's _BOOT_ID: PIDs restart at every boot

    @property
    def phase(self) -> str:
        return KINDS[self.kind][0]

    @property
    def outcome(self) -> str | None:
        return KINDS[self.kind][1]

    def as_dict(self) -> dict:
        """The fields `parse_authlog` prints, in its order."""
        return {
            "ts": self.ts.isoformat(),
            "host": self.host,
            "program": self.program,
            "pid": self.pid,
            "kind": self.kind,
            "outcome": self.outcome,
            "user": self.user,
            "source_ip": self.source_ip,
            "source_port": self.source_port,
            "method": self.method,
            "count": self.count,
        }


class Malformed:
    """Returned for a line that names sshd but whose header cannot be read."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MALFORMED"


MALFORMED = Malformed()

# --- Headers -------------------------------------------------------------------------------

# `Mar  3 00:17:22 host sshd[123]: msg`; the day may be padded or not, the host missing or empty
# (old syslogd writes "  sshd[1]: last message repeated"), the program bracketed without a PID.
CLASSIC_HEADER = re.compile(
    r"(?:<\d{1,3}>)?(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)?"
    r"(?: (?P<host>[^\s\[]*))? \[?(?P<prog>sshd(?:-session|-auth)?)(?:\[(?P<pid>\d+)\])?\]?:? "
    # Solaris adds a message id: "sshd[123]: [ID 800047 auth.info] Failed ..."
    r"(?:\[ID \d+ [\w.]+\] )?"
)
# `2024-03-29T17:37:18.123456+00:00 host sshd[123]: msg` (rsyslog's high-precision format).
RFC3339_HEADER = re.compile(
    r"(?:<\d{1,3}>)?(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"(?: (?P<host>[^\s\[]*))? (?P<prog>sshd(?:-session|-auth)?)(?:\[(?P<pid>\d+)\])?: "
)
# RFC 5424: `<38>1 2024-03-29T17:37:18.123Z host sshd 123 - - msg` (structured data or "-").
RFC5424_HEADER = re.compile(
    r"<\d{1,3}>1 (?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) "
    r"(?P<host>\S+) (?P<prog>sshd(?:-session|-auth)?) (?P<pid>\d+|-) \S+ "
    r'(?:-|(?:\[[^\s\]]+(?: [^=\s\]]+="(?:[^"\\]|\\.)*")*\])+)(?: |$)'
)
# Any syslog header (classic, RFC 3339 or RFC 5424), to tell a line of another program that merely
# mentions sshd ("sudo: ... COMMAND=/usr/bin/systemctl restart sshd") from an unreadable sshd line.
# Used only after the sshd headers failed: `a` is the host or the program, `b` the next word.
ANY_HEADER = re.compile(
    r"(?:<\d{1,3}>)?(?P<v5424>1 )?"
    r"(?:[A-Z][a-z]{2} {1,2}\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) +"
    r"(?P<a>\S+)(?: (?P<b>\S+))?"
)
PROGRAM_TOKEN = re.compile(r"\[?(?P<name>[^\s\[\]:]+)(?:\[\d+\])?\]?:$")
RFC3339_TS = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")

# --- Messages ------------------------------------------------------------------------------

ADDR = r"(?P<ip>[0-9A-Za-z.:%_-]+)"
# The trusted tail of an authentication message: "<user> from <addr>[ port <n>][ ssh2]", cut
# before sshd's own ": <auth info>" suffix. sshd strips everything from the first ':' out of a
# user name (BSD auth style), so the first ": " always starts the suffix; the greedy user group
# then takes the LAST " from <addr>" before it, and a user name with a fake
# " from 1.2.3.4 port 22 ssh2" in it stays inside the user name.
USER_FROM = re.compile(
    rf"(?P<user>.*) from {ADDR}(?: port (?P<port>\d{{1,5}}))?(?: ssh\d?)?(?: \[preauth\])?$"
)
ACCEPTED = re.compile(r"Accepted (?P<method>\S+) for (?P<rest>.*)$")
FAILED = re.compile(r"Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<rest>.*)$")
INVALID_USER = re.compile(r"Invalid user (?P<rest>.*)$")
USERAUTH_REQUEST_INVALID = re.compile(r"input_userauth_request: invalid user (?P<user>.*?)(?: \[preauth\])?$")
PAM_AUTH_FAILURE = re.compile(
    r"pam_unix\(sshd:auth\): authentication failure; logname=\S* uid=\d* euid=\d* tty=\S* "
    r"ruser=\S* rhost=(?P<ip>\S*)(?:\s+user=(?P<user>.*?))?(?: \[preauth\])?$"
)
PAM_MORE_FAILURES = re.compile(
    r"PAM (?P<n>\d+) more authentication failures?;.*? rhost=(?P<ip>\S*)(?:\s+user=(?P<user>.*))?$"
)
PAM_ERROR_FAILURE = re.compile(
    r"error: PAM: (?:[Aa]uthentication (?:failure|error)|User not known to the underlying authentication module) "
    r"for (?P<invalid>(?:illegal|invalid) user )?(?P<user>.*) from (?P<ip>[0-9A-Za-z.:%_-]+)(?: via \S+)?$"
)
PAM_SESSION = re.compile(r"pam_unix\(sshd:session\): session (?P<what>opened|closed) for user (?P<user>\S+)")
MAX_AUTH = re.compile(
    r"(?:error: )?maximum authentication attempts exceeded for (?P<invalid>invalid user )?(?P<rest>.*?)(?: \[preauth\])?$"
)
DISCONNECTING = re.compile(
    rf"Disconnecting(?: (?:(?:invalid|authenticating) user (?P<user>[^:]*) )?{ADDR} port (?P<port>\d+))?: "
    r"(?P<why>.*?)(?: for (?:invalid user )?(?P<user2>.*?))?(?: \[preauth\])?$"
)
RECEIVED_DISCONNECT = re.compile(
    r"(?:error: )?Received disconnect from (?P<ip>[0-9A-Za-z.:%_-]+)(?: port (?P<port>\d+))?: ?\d+: (?P<why>.*?)(?P<pre> \[preauth\])?$"
)
# "Disconnected from [invalid user X |authenticating user X |user X ]<addr> port <n> [preauth]"
DISCONNECTED = re.compile(
    r"Disconnected from (?:(?P<who>invalid|authenticating) user (?P<user>.*) |user (?P<postuser>.*) )?"
    r"(?P<ip>[0-9A-Za-z.:%_-]+) port (?P<port>\d+)(?P<pre> \[preauth\])?$"
)
CONNECTION_CLOSED = re.compile(
    r"Connection (?P<what>closed|reset) by (?:(?:(?P<who>invalid|authenticating) user (?P<user>.*) )?"
    rf"{ADDR} port (?P<port>\d+)|(?P<ip_only>[0-9A-Za-z.:%_-]+))(?P<pre> \[preauth\])?$"
)
SOCKET_RESET = re.compile(r"(?:fatal: )?Read from socket failed: Connection reset by peer")
CONNECTION_FROM = re.compile(r"Connection from (?P<ip>[0-9A-Za-z.:%_-]+)(?: port (?P<port>\d+))?(?: on |$)")
NO_IDENTIFICATION = re.compile(
    r"Did not receive identification string from (?P<ip>[0-9A-Za-z.:%_-]+)(?: port (?P<port>\d+))?"
)
BAD_PROTOCOL = re.compile(
    r"(?:Bad protocol version identification .* from|Protocol major versions differ for) "
    r"(?P<ip>[0-9A-Za-z.:%_-]+?)(?: port (?P<port>\d+))?(?::.*)?$"
)
# sshd's packet-layer fatal errors: "<function>: Connection from [<who> user <name> ]<addr> port <n>:
# <error>" (also "banner exchange: ..."). Anchored at the start: the client's identification string
# in other kex lines is attacker text and may itself say "Connection from 6.6.6.6 port 1". User
# names never hold ':' (sshd cuts them there), so the user part cannot run past the address.
KEX_SOURCE = re.compile(
    r"(?:error: |fatal: )?[\w ]+: Connection from (?:(?:authenticating |invalid )?user [^:]* )?"
    r"(?P<ip>[0-9A-Za-z.:%_-]+) port (?P<port>\d+)(?::|$)"
)
MAGIC_SOURCE = re.compile(
    r"Magic value check failed \(\d+\) on obfuscated handshake from (?P<ip>\S+) port (?P<port>\d+)$"
)
UNABLE_TO_NEGOTIATE = re.compile(
    r"(?:fatal: )?(?:Unable to negotiate (?:with (?P<ip>[0-9A-Za-z.:%_-]+) port (?P<port>\d+): |a )"
    r"|no matching \S+ found)"
)
TIMEOUT = re.compile(
    rf"(?:fatal: )?Timeout before authentication for (?:connection from )?{ADDR}(?: port (?P<port>\d+))?"
)
NOT_ALLOWED = re.compile(r"User (?P<user>.*) from (?P<ip>[0-9A-Za-z.:%_-]+) not allowed because ")
NOT_ALLOWED_NO_SOURCE = re.compile(r"User (?P<user>\S+) not allowed because ")
ROOT_REFUSED = re.compile(r"ROOT LOGIN REFUSED FROM (?P<ip>[0-9A-Za-z.:%_-]+)(?: port (?P<port>\d+))?")
REFUSED_CONNECT = re.compile(r"refused connect from \S+ \((?P<ip>[0-9A-Za-z.:%_-]+)\)")
REVERSE_MAPPING = re.compile(
    r"(?:reverse mapping checking getaddrinfo for \S+ \[(?P<ip>[0-9A-Fa-f.:]+)\] failed"
    r"|Address (?P<ip2>[0-9A-Fa-f.:]+) maps to \S+, but this does not map back to the address)"
)
SUBSYSTEM = re.compile(r"subsystem request for (?P<what>\S+) by user (?P<user>.*?)(?: failed.*)?$")
REPEATED = re.compile(r"message repeated (?P<n>\d+) times: \[ ?(?P<inner>.*)\]$")
LAST_REPEATED = re.compile(r"last message repeated (?P<n>\d+) times?$")

# Known lines that change no count: written by sshd around a connection, at INFO or VERBOSE.
INFO_PREFIXES = (
    "Postponed ",
    "Starting session:",
    "Close session:",
    "Transferred:",
    "User child is on pid",
    "Accepted key ",
    "Accepted certificate ",
    "Changed root directory",
    "pam_succeed_if(sshd:auth):",
    "PAM service(sshd) ignoring max retries",
    "pam_unix(sshd:account):",
    "pam_systemd(sshd:session):",
    "Disconnecting: ",
    "Disconnecting ",
    "debug1:",
    "Failed to release session",
    "Exiting on signal",
    "error: Bind to port",
    "error: Could not load host key",
    "Server terminated",
    "Received request to connect to",
    "Set /proc/self/oom_score_adj",
    "rexec line",
    "Nasty PTR record",
    "Authentication refused:",
    "userauth_pubkey:",
    "SSH: Server;",
)

KEX_MARKERS = (
    "kex_exchange_identification",
    "kex_protocol_error",
    "ssh_dispatch_run_fatal",
    "Magic value check failed",
)


def _port(value: str | None) -> int | None:
    if not value:
        return None
    number = int(value)
    return number if number <= 65535 else None


class Parser:
    """Parses lines read at one moment. `now` anchors the year of classic (yearless) lines."""

    def __init__(self, zone: tzinfo, now: datetime | None = None, year: int | None = None):
        self.zone = zone
        self.year = year
        self.set_now(now or datetime.now(UTC))

    def set_now(self, now: datetime) -> None:
        # A classic date later than this belongs to the previous year (December read in January).
        # A day of slack absorbs clocks and zones that disagree a little.
        self.now = now.astimezone(self.zone)
        self._latest = (self.now + timedelta(days=1)).replace(tzinfo=None)
        self._classic_cache: dict[str, datetime | None] = {}

    # -- timestamps --

    def classic_ts(self, mon: str, day: str, time: str) -> datetime | None:
        key = f"{mon}{day}{time}"
        cached = self._classic_cache.get(key)
        if cached is not None or key in self._classic_cache:
            return cached
        ts = self._classic_ts(mon, int(day), time)
        if len(self._classic_cache) > 10_000:
            self._classic_cache.clear()
        self._classic_cache[key] = ts
        return ts

    def _classic_ts(self, mon: str, day: int, time: str) -> datetime | None:
        month = MONTHS.get(mon)
        if month is None:
            return None
        hour, minute, second = int(time[0:2]), int(time[3:5]), int(time[6:8])
        if hour > 23 or minute > 59 or second > 59:
            return None
        if self.year is not None:
            candidates = [self.year]
        else:
            # The current year, else the one before; Feb 29 walks back to the last leap year.
            candidates = [self.now.year - back for back in range(9)]
        for year in candidates:
            try:
                naive = datetime(year, month, day, hour, minute, second)
            except ValueError:
                if self.year is not None or not (month == 2 and day == 29):
                    return None
                continue
            if self.year is None and naive > self._latest:
                continue
            return naive.replace(tzinfo=self.zone)
        return None

    def rfc3339_ts(self, text: str) -> datetime | None:
        m = RFC3339_TS.match(text)
        if m is None:
            return None
        year, month, day, hour, minute, second, frac, offset = m.groups()
        micro = int((frac or "0")[:6].ljust(6, "0"))
        try:
            naive = datetime(
                int(year),
                int(month),
                int(day),
                int(hour),
                int(minute),
                int(second),
                micro,
            )
        except ValueError:
            return None
        if offset is None:
            return naive.replace(tzinfo=self.zone)
        if offset == "Z":
            tz = UTC
        else:
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        return naive.replace(tzinfo=tz).astimezone(self.zone)

    # -- lines --

    def parse_line(self, line: str) -> Event | Malformed | None:
        """An Event for an sshd line, MALFORMED for an sshd line we cannot read, else None."""
        if "sshd" not in line:
            return None
        if len(line) > MAX_LINE_LENGTH:
            line = line[:MAX_LINE_LENGTH]
        first = line[:1]
        if first == "<":
            m = RFC5424_HEADER.match(line)
            if m is not None:
                ts = self.rfc3339_ts(m["ts"])
                pid = m["pid"]
                return self._event(
                    ts,
                    m["host"],
                    m["prog"],
                    None if pid == "-" else pid,
                    # RFC 5424 lets a UTF-8 message start with a byte order mark.
                    line[m.end() :].removeprefix("\ufeff"),
                )
            first = line[line.find(">") + 1 : line.find(">") + 2]
        if first.isdigit():
            m = RFC3339_HEADER.match(line)
            if m is None:
                return _unreadable(line)
            return self._event(
                self.rfc3339_ts(m["ts"]),
                m["host"],
                m["prog"],
                m["pid"],
                line[m.end() :],
            )
        m = CLASSIC_HEADER.match(line)
        if m is None:
            return _unreadable(line)
        ts = self.classic_ts(m["mon"], m["day"], m["time"])
        return self._event(ts, m["host"], m["prog"], m["pid"], line[m.end() :])

    def parse_journal(
        self,
        ts: datetime,
        host: str,
        program: str,
        pid: str | None,
        message: str,
        boot_id: str = "",
    ) -> Event | Malformed:
        """An event from journal fields; the journal gives the time, PID and boot itself."""
        if len(message) > MAX_LINE_LENGTH:
            message = message[:MAX_LINE_LENGTH]
        return self._event(ts.astimezone(self.zone), host, program, pid, message, boot_id)

    def _event(
        self,
        ts: datetime | None,
        host: str | None,
        program: str,
        pid: str | None,
        msg: str,
        boot_id: str = "",
    ) -> Event | Malformed:
        if ts is None:
            return MALFORMED
        msg = msg.rstrip()
        fields = classify(msg)
        return Event(
            ts=ts,
            host=host or "",
            program=program,
            pid=int(pid) if pid and pid.isdigit() else None,
            message=msg,
            boot_id=boot_id,
            **fields,
        )


def _unreadable(line: str) -> Malformed | None:
    """None for a line whose header names another program, else MALFORMED (rare lines only)."""
    m = ANY_HEADER.match(line)
    if m is None:
        return MALFORMED
    if m["v5424"]:
        # RFC 5424: "<pri>1 TIMESTAMP HOST APP-NAME PROCID ...": the program is the second word.
        name = m["b"]
    else:
        # "TIMESTAMP [HOST] PROGRAM[PID]: ...": the program is the first word ending in ':'.
        token = PROGRAM_TOKEN.match(m["a"]) or (PROGRAM_TOKEN.match(m["b"]) if m["b"] else None)
        name = token["name"] if token else None
    if name is None:
        return MALFORMED
    return MALFORMED if name.rsplit("/", 1)[-1] in PROGRAMS else None


def classify(msg: str) -> dict:
    """The kind of an sshd message and what it says about user, source and method."""
    m = REPEATED.match(msg)
    if m:
        fields = classify(m["inner"].rstrip())
        if fields["kind"] in ("repeat", "unknown"):
            return fields
        fields["count"] = max(1, int(m["n"]))
        return fields
    space = msg.find(" ")
    word = msg[:space] if space > 0 else msg
    handler = DISPATCH.get(word)
    if handler is not None:
        fields = handler(msg)
        if fields is not None:
            return fields
    return _fallback(msg)


def _user_source(rest: str) -> tuple[str, str, int | None] | None:
    cut = rest.find(": ")
    if cut != -1:
        rest = rest[:cut]
    m = USER_FROM.match(rest)
    if m is None:
        return None
    return m["user"], m["ip"], _port(m["port"])


def _accepted(msg: str) -> dict | None:
    m = ACCEPTED.match(msg)
    if m is None:
        return None
    parts = _user_source(m["rest"])
    if parts is None:
        return None
    user, ip, port = parts
    return {
        "kind": "accepted",
        "method": m["method"],
        "user": user,
        "source_ip": ip,
        "source_port": port,
    }


def _failed(msg: str) -> dict | None:
    m = FAILED.match(msg)
    if m is None:
        return None
    parts = _user_source(m["rest"])
    if parts is None:
        return None
    user, ip, port = parts
    return {
        "kind": "failed",
        "method": m["method"],
        "user": user,
        "source_ip": ip,
        "source_port": port,
        "invalid_user": bool(m["invalid"]),
    }


def _invalid(msg: str) -> dict | None:
    m = INVALID_USER.match(msg)
    if m is None:
        return None
    parts = _user_source(m["rest"])
    if parts is None:
        return None
    user, ip, port = parts
    return {
        "kind": "invalid_user",
        "user": user,
        "source_ip": ip,
        "source_port": port,
        "invalid_user": True,
    }


def _pam_unix(msg: str) -> dict | None:
    if msg.startswith("pam_unix(sshd:auth): check pass; user unknown"):
        return {"kind": "pam_user_unknown", "invalid_user": True}
    m = PAM_AUTH_FAILURE.match(msg)
    if m:
        return {
            "kind": "pam_auth_failure",
            "user": m["user"] or None,
            "source_ip": m["ip"] or None,
        }
    m = PAM_SESSION.match(msg)
    if m:
        user = m["user"]
        if "(uid=" in user:
            user = user[: user.index("(uid=")]
        return {"kind": f"session_{m['what']}", "user": user}
    if msg.startswith("pam_unix(sshd:auth): "):
        return {"kind": "info"}
    return None


def _pam(msg: str) -> dict | None:
    m = PAM_MORE_FAILURES.match(msg)
    if m:
        return {
            "kind": "pam_more_failures",
            "user": m["user"] or None,
            "source_ip": m["ip"] or None,
        }
    return None


def _error(msg: str) -> dict | None:
    m = PAM_ERROR_FAILURE.match(msg)
    if m:
        return {
            "kind": "pam_auth_failure",
            "user": m["user"],
            "source_ip": m["ip"],
            "invalid_user": bool(m["invalid"]),
        }
    m = MAX_AUTH.match(msg)
    if m:
        return _max_auth(m)
    m = RECEIVED_DISCONNECT.match(msg)
    if m:
        return _received_disconnect(m)
    if msg.startswith(KEX_MARKERS, 7):  # after "error: "
        return _kex(msg)
    return None


def _fatal(msg: str) -> dict | None:
    m = TIMEOUT.match(msg)
    if m:
        return {
            "kind": "timeout",
            "source_ip": m["ip"],
            "source_port": _port(m["port"]),
        }
    m = UNABLE_TO_NEGOTIATE.match(msg)
    if m:
        return {
            "kind": "unable_to_negotiate",
            "source_ip": m["ip"],
            "source_port": _port(m["port"]),
        }
    if SOCKET_RESET.match(msg):
        return {"kind": "connection_reset"}
    return None


def _max_auth(m: re.Match) -> dict:
    fields: dict = {"kind": "max_auth_attempts", "invalid_user": bool(m["invalid"])}
    parts = _user_source(m["rest"])
    if parts:
        fields["user"], fields["source_ip"], fields["source_port"] = parts
    return fields


def _maximum(msg: str) -> dict | None:
    m = MAX_AUTH.match(msg)
    return _max_auth(m) if m else None


def _received(msg: str) -> dict | None:
    m = RECEIVED_DISCONNECT.match(msg)
    if m:
        return _received_disconnect(m)
    if msg.startswith("Received signal"):
        return {"kind": "received_signal"}
    if msg.startswith("Received SIGHUP"):
        return {"kind": "received_sighup"}
    return None


def _received_disconnect(m: re.Match) -> dict:
    # Since OpenSSH 5.9 pre-auth lines end in [preauth] and carry a port; one with a port and
    # without the mark comes from a logged-in session's process (post-auth child).
    post = not m["pre"] and (m["port"] is not None or m["why"] == "disconnected by user")
    kind = "received_disconnect_user" if post else "received_disconnect"
    return {"kind": kind, "source_ip": m["ip"], "source_port": _port(m["port"])}


def _disconnected(msg: str) -> dict | None:
    m = DISCONNECTED.match(msg)
    if m is None:
        return None
    if m["postuser"] is not None and not m["pre"]:
        return {
            "kind": "disconnected_user",
            "user": m["postuser"],
            "source_ip": m["ip"],
            "source_port": _port(m["port"]),
        }
    return {
        "kind": "disconnected",
        "user": m["user"] if m["user"] is not None else m["postuser"],
        "source_ip": m["ip"],
        "source_port": _port(m["port"]),
        "invalid_user": m["who"] == "invalid",
    }


def _disconnecting(msg: str) -> dict | None:
    m = DISCONNECTING.match(msg)
    if m is None:
        return None
    if not m["why"].startswith("Too many authentication failures"):
        return {"kind": "info", "source_ip": m["ip"], "source_port": _port(m["port"])}
    return {
        "kind": "too_many_auth_failures",
        "user": m["user"] if m["user"] is not None else m["user2"],
        "source_ip": m["ip"],
        "source_port": _port(m["port"]),
    }


def _connection(msg: str) -> dict | None:
    m = CONNECTION_FROM.match(msg)
    if m:
        return {
            "kind": "connection_from",
            "source_ip": m["ip"],
            "source_port": _port(m["port"]),
        }
    m = CONNECTION_CLOSED.match(msg)
    if m:
        return _connection_closed(m)
    return None


def _connection_closed(m: re.Match) -> dict:
    if m["pre"] or m["user"] is not None or m["port"] is None:
        kind = "connection_closed" if m["what"] == "closed" else "connection_reset"
    else:
        # "Connection closed by <addr> port <n>" without [preauth] ends a logged-in session
        # (sshd marks every pre-auth line since OpenSSH 5.9).
        kind = "connection_closed_postauth"
    ip = m["ip"] or m["ip_only"]
    return {
        "kind": kind,
        "user": m["user"],
        "source_ip": ip,
        "source_port": _port(m["port"]),
        "invalid_user": m["who"] == "invalid",
    }


def _did(msg: str) -> dict | None:
    m = NO_IDENTIFICATION.match(msg)
    if m:
        return {
            "kind": "no_identification",
            "source_ip": m["ip"],
            "source_port": _port(m["port"]),
        }
    return None


def _bad(msg: str) -> dict | None:
    m = BAD_PROTOCOL.match(msg)
    if m:
        return {
            "kind": "bad_protocol",
            "source_ip": m["ip"],
            "source_port": _port(m["port"]),
        }
    return None


def _kex(msg: str) -> dict:
    m = KEX_SOURCE.match(msg) or MAGIC_SOURCE.match(msg)
    fields: dict = {"kind": "kex_error"}
    if m:
        fields["source_ip"], fields["source_port"] = m["ip"], _port(m["port"])
    return fields


def _banner(msg: str) -> dict | None:
    if not msg.startswith("banner exchange: "):
        return None
    fields = _kex(msg)
    fields["kind"] = "banner_error"
    return fields


def _unable(msg: str) -> dict | None:
    m = UNABLE_TO_NEGOTIATE.match(msg)
    if m:
        return {
            "kind": "unable_to_negotiate",
            "source_ip": m["ip"],
            "source_port": _port(m["port"]),
        }
    return None


def _timeout(msg: str) -> dict | None:
    m = TIMEOUT.match(msg)
    if m:
        return {
            "kind": "timeout",
            "source_ip": m["ip"],
            "source_port": _port(m["port"]),
        }
    return None


def _user(msg: str) -> dict | None:
    m = NOT_ALLOWED.match(msg)
    if m:
        return {"kind": "not_allowed", "user": m["user"], "source_ip": m["ip"]}
    m = NOT_ALLOWED_NO_SOURCE.match(msg)
    if m:
        return {"kind": "not_allowed", "user": m["user"]}
    return None


def _root(msg: str) -> dict | None:
    m = ROOT_REFUSED.match(msg)
    if m:
        return {
            "kind": "root_refused",
            "user": "root",
            "source_ip": m["ip"].removeprefix("::ffff:"),
            "source_port": _port(m["port"]),
        }
    return None


def _refused(msg: str) -> dict | None:
    m = REFUSED_CONNECT.match(msg)
    if m:
        ip = m["ip"]
        return {"kind": "refused_connect", "source_ip": ip.removeprefix("::ffff:")}
    return None


def _reverse(msg: str) -> dict | None:
    m = REVERSE_MAPPING.match(msg)
    if m:
        return {"kind": "reverse_mapping", "source_ip": m["ip"] or m["ip2"]}
    return None


def _subsystem(msg: str) -> dict | None:
    m = SUBSYSTEM.match(msg)
    if m:
        return {"kind": "subsystem", "user": m["user"], "method": m["what"]}
    return None


def _server(msg: str) -> dict | None:
    if msg.startswith("Server listening on "):
        return {"kind": "server_listening"}
    return None


def _last(msg: str) -> dict | None:
    m = LAST_REPEATED.match(msg)
    if m:
        return {"kind": "repeat", "count": max(1, int(m["n"]))}
    return None


def _input(msg: str) -> dict | None:
    m = USERAUTH_REQUEST_INVALID.match(msg)
    if m:
        return {
            "kind": "userauth_request_invalid",
            "user": m["user"],
            "invalid_user": True,
        }
    return None


DISPATCH = {
    "Accepted": _accepted,
    "Failed": _failed,
    "Invalid": _invalid,
    "pam_unix(sshd:auth):": _pam_unix,
    "pam_unix(sshd:session):": _pam_unix,
    "PAM": _pam,
    "error:": _error,
    "fatal:": _fatal,
    "maximum": _maximum,
    "Received": _received,
    "Disconnected": _disconnected,
    "Disconnecting": _disconnecting,
    "Disconnecting:": _disconnecting,
    "Connection": _connection,
    "Did": _did,
    "Bad": _bad,
    "Protocol": _bad,
    "banner": _banner,
    "Unable": _unable,
    "Timeout": _timeout,
    "User": _user,
    "ROOT": _root,
    "refused": _refused,
    "reverse": _reverse,
    "Address": _reverse,
    "subsystem": _subsystem,
    "Server": _server,
    "last": _last,
    "input_userauth_request:": _input,
}


def _fallback(msg: str) -> dict:
    # Markers only where sshd writes them: a user name elsewhere in the line may hold them too.
    if msg.startswith(KEX_MARKERS) or (
        msg.startswith(("error: ", "fatal: ")) and msg.startswith(KEX_MARKERS, 7)
    ):
        return _kex(msg)
    if msg.startswith(INFO_PREFIXES):
        return {"kind": "info"}
    return {"kind": "unknown"}
