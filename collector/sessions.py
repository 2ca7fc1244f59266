"""Connection accounting: which lines make a connection, and on which day it counts. Pure Python.

A connection is one per-connection sshd process (host, PID). It counts once, on the day of its
first line, however its lines are split across days, reads or restarts, because the open
connections are part of the state the agent saves with its read position (`Tracker.state`, and
`Tracker.take_changes` for the connections that changed).

Counts are kept as deltas: each event changes a connection, and the day, source and user totals
move by the difference between the connection's contribution before and after. Summing the
deltas of any split of a log therefore gives the counts of reading it in one go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from .contract import MAX_USER_LENGTH, TALLIED
from .messages import KINDS, LISTENER, OPEN, POST, PRE, REFUSED
from .parsing import Event, Parser

# A PID idle this long (in log time) is forgotten: pre-auth connections die within sshd's
# LoginGraceTime (2 minutes by default), and the later lines of logged-in sessions are post-auth
# lines, which never open a connection, so forgetting them changes no count.
IDLE_SECONDS: Final = 600

# Lines after which the process's connection is over; a later "open" line is a new connection.
ENDING_KINDS: Final = frozenset(
    {
        "received_disconnect",
        "disconnected",
        "connection_closed",
        "connection_reset",
        "no_identification",
        "kex_error",
        "banner_error",
        "bad_protocol",
        "unable_to_negotiate",
        "timeout",
        "too_many_auth_failures",
        "refused_connect",
        "received_disconnect_user",
        "disconnected_user",
        "connection_closed_postauth",
        "session_closed",
    }
)
# Lines whose user name is a user that tried to log in (not e.g. a PAM account name).
USER_KINDS: Final = frozenset(
    {
        "accepted",
        "failed",
        "invalid_user",
        "userauth_request_invalid",
        "not_allowed",
        "root_refused",
        "max_auth_attempts",
    }
)

# kind -> (phase, whether it ends the connection, whether its user is one who tried to log in).
KIND_TRAITS: Final = {
    kind: (phase, kind in ENDING_KINDS, kind in USER_KINDS) for kind, (phase, _) in KINDS.items()
}

MAX_USERS_PER_CONNECTION: Final = 8
MAX_UNKNOWN_SAMPLES: Final = 20

# Per-day counter positions in Tally.days values: the contract's tallied counts, in its order.
(
    SESSIONS,
    ACCEPTED,
    FAILED_ATTEMPTS,
    FAILED_SESSIONS,
    INVALID_USER_SESSIONS,
    PREAUTH_ONLY,
) = range(len(TALLIED))
# Conn.flags() bits, and the count each stands for.
FAILED_SESSION, INVALID_SESSION, PREAUTH_ONLY_SESSION = 1, 2, 4
FLAGS: Final = ((FAILED_SESSION, FAILED_SESSIONS), (INVALID_SESSION, INVALID_USER_SESSIONS),
                (PREAUTH_ONLY_SESSION, PREAUTH_ONLY))  # fmt: skip


class Conn:
    """What the tracker remembers about one process. `counted` is False for processes that are
    not connections of their own (post-auth children, the listener): their PID is remembered so
    that their later lines do not open one."""

    __slots__ = (
        "accepted",
        "day",
        "ended",
        "failed",
        "invalid",
        "ip",
        "last",
        "login",
        "name",
        "rep",
        "role",
        "users",
    )

    def __init__(self, day: str, last: float, role: str = "conn"):
        self.day = day
        self.last = last
        self.ip: str | None = None
        # [host name, when first seen] from PAM's rhost while sshd has written no address: the
        # source only if none ever comes (see Tracker.evict).
        self.name: list | None = None
        self.login: float | None = None  # when it was accepted, until its end is recorded
        self.users: list[str] = []
        self.failed = 0
        self.accepted = False
        self.invalid = False
        # When the connection ended (the time of its first ending line), else False.
        self.ended: float | bool = False
        self.role = role  # "conn", "post" or "listener"
        # What a later "message repeated" line repeats: its last event, or as read back from the
        # saved state, [kind, user, source_ip, source_port, method, invalid_user].
        self.rep: Event | list | None = None

    def flags(self) -> int:
        """Which outcome counts the connection is in, as bits (FLAGS)."""
        flags = 0
        if self.failed > 0 and not self.accepted:
            flags |= FAILED_SESSION
        if self.invalid:
            flags |= INVALID_SESSION
        if not (self.accepted or self.failed or self.invalid):
            flags |= PREAUTH_ONLY_SESSION  # a scanner
        return flags

    def to_list(self) -> list:
        return [
            self.day,
            self.last,
            self.ip,
            self.users,
            self.failed,
            self.accepted,
            self.invalid,
            self.ended,
            self.role,
            _repeatable(self.rep),
            self.name,
            self.login,
        ]

    @classmethod
    def from_list(cls, row: list) -> Conn:
        conn = cls(row[0], row[1], row[8])
        (
            conn.ip,
            conn.users,
            conn.failed,
            conn.accepted,
            conn.invalid,
            conn.ended,
            _,
            conn.rep,
        ) = row[2:10]
        # State saved before host names were kept has ten fields.
        conn.name = row[10] if len(row) > 10 else None
        conn.login = row[11] if len(row) > 11 else None
        if conn.ended is True:  # saved before the end's time was kept
            conn.ended = conn.last
        return conn


class Source:
    """A source's deltas of one day (Tally.sources): times as epoch seconds, the last three None
    until such an attempt is seen."""

    __slots__ = ("accepted", "failed", "first", "first_accepted", "first_failed", "last", "last_failed",
                 "sessions", "users")  # fmt: skip

    def __init__(self, ts: float):
        self.sessions = 0
        self.failed = 0  # failed attempts
        self.accepted = 0
        self.first = ts
        self.last = ts
        self.users: set[str] = set()
        self.first_failed: float | None = None
        self.last_failed: float | None = None
        self.first_accepted: float | None = None


@dataclass
class Tally:
    """Count deltas gathered from events, to be added to the stored counts in one transaction."""

    days: dict[str, list[int]] = field(default_factory=dict)
    # (day, ip) -> its deltas
    sources: dict[tuple[str, str], Source] = field(default_factory=dict)
    # Each accepted connection: [day, ts, user, ip, port, method, key, connection]
    logins: list[list] = field(default_factory=list)
    # (connection, login ts) -> the ts the logged-in connection ended
    login_ends: dict[tuple[str, float], float] = field(default_factory=dict)
    # (day, user) -> [sessions, failed_attempts, accepted]
    users: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # (day, kind) -> events
    kinds: dict[tuple[str, str], int] = field(default_factory=dict)
    unknown_samples: list[tuple[float, str]] = field(default_factory=list)
    # hour (epoch // 3600) -> unknown messages, for "unknown messages in the last 24 h"
    unknown_hours: dict[int, int] = field(default_factory=dict)
    last_event_ts: float | None = None

    def day(self, day: str) -> list[int]:
        counts = self.days.get(day)
        if counts is None:
            counts = self.days[day] = [0] * len(TALLIED)
        return counts

    def source(self, day: str, ip: str, ts: float) -> Source:
        counts = self.sources.get((day, ip))
        if counts is None:
            counts = self.sources[(day, ip)] = Source(ts)
        return counts

    def user(self, day: str, user: str) -> list[int]:
        counts = self.users.get((day, user))
        if counts is None:
            counts = self.users[(day, user)] = [0, 0, 0]
        return counts

    def __bool__(self) -> bool:
        return bool(self.days or self.kinds or self.login_ends)


class Tracker:
    """Feeds events into connections and tallies what they change."""

    def __init__(self, state: dict | None = None, conns: dict[str, list] | None = None):
        state = state or {}
        self.conns: dict[str, Conn] = {k: Conn.from_list(v) for k, v in (conns or {}).items()}
        self.newest: float = state.get("newest", 0.0)
        self.next_evict: float = state.get("next_evict", 0.0)
        # Old syslogd writes "last message repeated" with an empty host: it is the last host.
        self.last_host: str = state.get("last_host", "")
        self.tally = Tally()
        # Keys of connections changed, and of connections forgotten, since the last
        # take_changes(): a commit writes only these, so its cost follows the lines of the batch,
        # not the number of open connections.
        self._changed: set[str] = set()
        self._removed: set[str] = set()

    def state(self) -> dict:
        """The JSON-ready state besides the connections (take_changes), saved with the read
        position so a restart resumes exactly."""
        return {
            "newest": self.newest,
            "next_evict": self.next_evict,
            "last_host": self.last_host,
        }

    def take_tally(self) -> Tally:
        tally, self.tally = self.tally, Tally()
        return tally

    def take_changes(self) -> tuple[dict[str, list], set[str]]:
        """The connections changed since the last call (key -> JSON-ready state) and the keys of
        those forgotten since. A key forgotten and then opened again is only changed."""
        conns = self.conns
        changed = {key: conns[key].to_list() for key in self._changed}
        removed = self._removed - self._changed
        self._changed, self._removed = set(), set()
        return changed, removed

    def _forget(self, key: str) -> Conn:
        self._changed.discard(key)
        self._removed.add(key)
        return self.conns.pop(key)

    def evict(self) -> None:
        # Called from feed() at points fixed by the events themselves, never by how the log was
        # split into reads, so that any split gives the same counts.
        horizon = self.newest - IDLE_SECONDS
        stale = [key for key, conn in self.conns.items() if conn.last < horizon]
        for key in stale:
            conn = self._forget(key)
            if conn.name is not None and conn.ip is None:
                self._name_source(conn)

    def _name_source(self, conn: Conn) -> None:
        """A connection that is over and never had an address written: its source is the host
        name PAM gave, listed under that name (contract.is_address tells it from an address)."""
        assert conn.name is not None
        name, first = conn.name
        source = self.tally.source(conn.day, name, first)
        source.sessions += 1
        source.failed += conn.failed
        source.accepted += 1 if conn.accepted else 0
        source.last = max(source.last, conn.last)
        source.users.update(conn.users)

    def feed(self, ev: Event) -> Event | None:
        """Account for one event; returns it (a repeat resolved to what it repeats) or None."""
        tally = self.tally
        ts, day = ev.epoch, ev.day
        if ts > self.newest:
            self.newest = ts
            if ts >= self.next_evict:
                self.evict()
                self.next_evict = ts + IDLE_SECONDS
        if tally.last_event_ts is None or ts > tally.last_event_ts:
            tally.last_event_ts = ts

        host = ev.host
        if host:
            self.last_host = host
        else:
            host = self.last_host
        if ev.pid is None:
            key = conn = None
        else:
            key = f"{ev.boot_id}|{host}|{ev.pid}"
            conn = self.conns.get(key)
            if conn is not None and abs(ts - conn.last) > IDLE_SECONDS:
                # Too far apart in time to be the same process (PID reuse, or a backfill of an
                # older file): forget the old one.
                self._forget(key)
                if conn.name is not None and conn.ip is None:
                    self._name_source(conn)
                conn = None

        kind = ev.kind
        count = ev.count
        if kind == "repeat":
            if conn is None or conn.rep is None:
                return None
            ev = _repeated(conn.rep, ev)
            kind = ev.kind
        phase, ending, names_user = KIND_TRAITS[kind]

        # Arriving after its PID's connection ended but stamped before that end, a line is a copy
        # syslog delivered again (rsyslog/imjournal after a restart). So is one stamped in the
        # very second of the end that would open a connection or add an attempt: a PID never
        # starts a new connection in the second its last one ended. A copy changes nothing;
        # trailing lines of that second (PAM's summary) attach as before.
        if (
            conn is not None
            and conn.ended is not False
            and conn.role == "conn"
            and (ts < conn.ended or (ts == conn.ended and phase == OPEN))
        ):
            return None

        kinds = tally.kinds
        kinds_key = (day, kind)
        kinds[kinds_key] = kinds.get(kinds_key, 0) + count
        if kind == "unknown":
            hour = int(ts // 3600)
            tally.unknown_hours[hour] = tally.unknown_hours.get(hour, 0) + count
            if len(tally.unknown_samples) < MAX_UNKNOWN_SAMPLES:
                tally.unknown_samples.append((ts, ev.message))
        if phase == REFUSED:
            # The listener refused or penalised an address: a source of the day, no connection.
            if ev.source_ip:
                source = tally.source(day, ev.source_ip[:255], ts)
                source.first = min(source.first, ts)
                source.last = max(source.last, ts)
            return ev
        if key is None:
            return ev

        if conn is None:
            if phase in (OPEN, PRE):
                conn = self._open(key, day, ts)
            elif phase in (POST, LISTENER):
                conn = self.conns[key] = Conn(day, ts, "post" if phase == POST else "listener")
                self._changed.add(key)
                return ev
            else:
                return ev
        elif phase == OPEN and ((conn.ended is not False and conn.role == "conn") or conn.role == "post"):
            # This PID starts authenticating again after its connection ended: a new one.
            conn = self._open(key, day, ts)
        # Every change to a connection below follows this line.
        conn.last = ts
        self._changed.add(key)
        if conn.role != "conn":
            return ev

        if ending and conn.ended is False:
            conn.ended = ts
            if conn.login is not None:
                tally.login_ends[(key, conn.login)] = ts
                conn.login = None
        self._apply(conn, ev, kind, names_user, count, ts, key)
        if kind != "unknown" and kind != "info":
            conn.rep = ev
        return ev

    def feed_lines(self, parser: Parser, lines: list[str], malformed: set[int]) -> None:
        """Parse and account for a chunk of log lines, adding the indexes of the sshd lines that
        cannot be read to `malformed`. One call per chunk: compiled (speedups.py), the loop
        calls the parser and feed() directly, not through Python's calls."""
        for index, line in enumerate(lines):
            event = parser.parse_line(line)
            if event is None:
                continue
            if isinstance(event, Event):
                self.feed(event)
            else:
                malformed.add(index)  # MALFORMED

    def _open(self, key: str, day: str, ts: float) -> Conn:
        conn = self.conns[key] = Conn(day, ts)
        counts = self.tally.day(day)
        counts[SESSIONS] += 1
        counts[PREAUTH_ONLY] += 1
        return conn

    def _apply(
        self, conn: Conn, ev: Event, kind: str, names_user: bool, count: int, ts: float, key: str
    ) -> None:
        tally = self.tally
        day = conn.day
        invalid_user = ev.invalid_user
        # Only these change a connection's outcome flags; most lines change none.
        changes = kind == "failed" or kind == "accepted" or (invalid_user and not conn.invalid)
        before = conn.flags() if changes else -1

        if ev.source_name and conn.ip is None and conn.name is None:
            conn.name = [ev.source_name[:255], ts]
        # The connection's source of the day: looked up once, as most lines name or have one.
        sources = tally.sources
        ip = conn.ip
        if ip is None:
            ip = ev.source_ip
            if ip:
                conn.ip = ip = ip[:255]
                source = sources.get((day, ip))
                if source is None:
                    source = sources[(day, ip)] = Source(ts)
                source.sessions += 1
                source.users.update(conn.users)
            else:
                source = None
        else:
            source = sources.get((day, ip))
            if source is None:
                source = sources[(day, ip)] = Source(ts)
        if source is not None:
            if ts < source.first:
                source.first = ts
            if ts > source.last:
                source.last = ts

        user = ev.user
        if user is not None and names_user:
            user = user[:MAX_USER_LENGTH]
            if user not in conn.users and len(conn.users) < MAX_USERS_PER_CONNECTION:
                conn.users.append(user)
                tally.user(day, user)[0] += 1
                if source is not None:
                    source.users.add(user)
        else:
            user = None

        if invalid_user:
            conn.invalid = True
        if kind == "failed":
            conn.failed += count
            tally.day(day)[FAILED_ATTEMPTS] += count
            if source is not None:
                source.failed += count
                if source.first_failed is None or ts < source.first_failed:
                    source.first_failed = ts
                if source.last_failed is None or ts > source.last_failed:
                    source.last_failed = ts
            if user is not None and user in conn.users:
                tally.user(day, user)[1] += count
        elif kind == "accepted" and not conn.accepted:
            conn.accepted = True
            conn.login = ts
            tally.day(day)[ACCEPTED] += 1
            tally.logins.append([day, ts, user, conn.ip, ev.source_port, ev.method, ev.key, key])
            if source is not None:
                source.accepted += 1
                if source.first_accepted is None or ts < source.first_accepted:
                    source.first_accepted = ts
            if user is not None and user in conn.users:
                tally.user(day, user)[2] += 1

        if before == -1:
            return
        after = conn.flags()
        if after != before:
            counts = tally.day(day)
            for bit, index in FLAGS:
                if (after ^ before) & bit:
                    counts[index] += 1 if after & bit else -1


def _repeatable(rep: Event | list | None) -> list | None:
    """Conn.rep as the saved state keeps it."""
    if isinstance(rep, Event):
        return [rep.kind, rep.user, rep.source_ip, rep.source_port, rep.method, rep.invalid_user]
    return rep


def _repeated(rep: Event | list, ev: Event) -> Event:
    """A "message repeated" event as the event it repeats (Conn.rep), at the repeat's time, with
    the repeat's count."""
    was = _repeatable(rep)
    assert was is not None
    return Event(ev.epoch, ev.day, ev.zone, ev.host, ev.program, ev.pid, was[0], was[1], was[2], was[3],
                 was[4], ev.count, was[5], ev.message, ev.boot_id)  # fmt: skip
