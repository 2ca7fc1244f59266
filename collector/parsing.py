"""Turn sshd's log lines into events: the header (syslog, RFC 3339, RFC 5424, the journal's
fields) and its timestamp here, the message itself in messages.py. Pure Python: no Django, no I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Final

from .messages import KINDS, classify

# A line longer than this is cut before parsing and counted as malformed: sshd's own lines are
# well under 2 KB, and an unbounded line must not cost unbounded memory.
MAX_LINE_LENGTH: Final = 8192

PROGRAMS: Final = ("sshd", "sshd-session", "sshd-auth", "sshd(pam_unix)")
# Old Red Hat's PAM logged as "sshd(pam_unix)[pid]: <message>", under sshd's own PID, without the
# "pam_unix(sshd:auth): " prefix later releases write: the prefix each message then had.
OLD_PAM_PREFIXES: Final = (("session ", "pam_unix(sshd:session): "), ("check pass;", "pam_unix(sshd:auth): "))

MONTHS: Final = {
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


class Event:
    """One sshd log event. `count` > 1 when a repeat line stands for several.

    A plain class, not a dataclass: compiled (speedups.py), its __init__ is native code, where a
    dataclass's generated __init__ stays interpreted Python (14 % of a line's instructions).
    """

    __slots__ = (
        "epoch",
        "day",
        "zone",
        "host",
        "program",
        "pid",
        "kind",
        "user",
        "source_ip",
        "source_port",
        "method",
        "count",
        "invalid_user",
        "message",
        "boot_id",
        "source_name",
        "key",
    )

    def __init__(
        self,
        epoch: float,
        day: str,
        zone: tzinfo,
        host: str,
        program: str,
        pid: int | None,
        kind: str,
        user: str | None = None,
        source_ip: str | None = None,
        source_port: int | None = None,
        method: str | None = None,
        count: int = 1,
        invalid_user: bool = False,
        message: str = "",
        boot_id: str = "",
        source_name: str | None = None,
        key: str | None = None,
    ) -> None:
        self.epoch = epoch  # seconds since the epoch
        self.day = day  # the ISO date it counts on, in `zone`, the zone days are counted in
        self.zone = zone
        self.host = host
        self.program = program
        self.pid = pid
        self.kind = kind
        self.user = user
        self.source_ip = source_ip
        self.source_port = source_port
        self.method = method
        self.count = count
        self.invalid_user = invalid_user
        self.message = message
        self.boot_id = boot_id  # the journal's _BOOT_ID: PIDs restart at every boot
        self.source_name = source_name  # a host name PAM gave (rhost=) where no address was written
        self.key = key  # an Accepted line's key: "ED25519 SHA256:…" when sshd logs it

    def __repr__(self) -> str:
        # Compiled, the class has no __slots__ to read the names from.
        names = ("day", "host", "program", "pid", "kind", "user", "source_ip", "source_port", "method",
                 "count", "invalid_user", "message", "boot_id", "source_name", "key")  # fmt: skip
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"Event(ts={self.ts.isoformat()}, {fields})"

    @property
    def ts(self) -> datetime:
        """When, as an aware time in the zone days are counted in (not needed to count: made
        only when asked for)."""
        return datetime.fromtimestamp(self.epoch, self.zone)

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


MALFORMED: Final = Malformed()

# A time as the tracker needs it: (seconds since the epoch, the ISO date of its day in the zone
# days are counted in).
When = tuple[float, str]

# What Parser._day_year answers besides a year: no time on the day is valid, or the year depends
# on the time.
NO_YEAR: Final = 0
VARIES: Final = -1

# --- Headers -------------------------------------------------------------------------------

# `Mar  3 00:17:22 host sshd[123]: msg`; the day may be padded or not, the host missing or empty
# (old syslogd writes "  sshd[1]: last message repeated"), the program bracketed without a PID.
CLASSIC_HEADER: Final = re.compile(
    r"(?:<\d{1,3}>)?(?P<stamp>[A-Z][a-z]{2} {1,2}\d{1,2} \d\d:\d\d:\d\d)(?:\.\d+)?"
    r"(?: (?P<host>[^\s\[]*))? \[?(?P<prog>sshd(?:-session|-auth|\(pam_unix\))?)(?:\[(?P<pid>\d+)\])?\]?:? "
    # Solaris adds a message id: "sshd[123]: [ID 800047 auth.info] Failed ..."
    r"(?:\[ID \d+ [\w.]+\] )?"
)
# The shape nearly every classic line has, `Mar  3 00:17:22 host sshd[123]: msg`, tried first as
# it is cheaper to match; where it matches, CLASSIC_HEADER gives the same groups.
COMMON_HEADER: Final = re.compile(
    r"([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ([^\s\[]+) (sshd(?:-session|-auth)?)\[(\d+)\]: (?:\[ID \d+ [\w.]+\] )?"
)
COMMON_STAMP: Final = re.compile(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d")
COMMON_HOST: Final = re.compile(r"[^\s\[]+")
# `2024-03-29T17:37:18.123456+00:00 host sshd[123]: msg` (rsyslog's high-precision format).
RFC3339_HEADER: Final = re.compile(
    r"(?:<\d{1,3}>)?(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"(?: (?P<host>[^\s\[]*))? (?P<prog>sshd(?:-session|-auth|\(pam_unix\))?)(?:\[(?P<pid>\d+)\])?: "
)
# RFC 5424: `<38>1 2024-03-29T17:37:18.123Z host sshd 123 - - msg` (structured data or "-").
RFC5424_HEADER: Final = re.compile(
    r"<\d{1,3}>1 (?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) "
    r"(?P<host>\S+) (?P<prog>sshd(?:-session|-auth)?) (?P<pid>\d+|-) \S+ "
    r'(?:-|(?:\[[^\s\]]+(?: [^=\s\]]+="(?:[^"\\]|\\.)*")*\])+)(?: |$)'
)
# Any syslog header (classic, RFC 3339 or RFC 5424), to tell a line of another program that merely
# mentions sshd ("sudo: ... COMMAND=/usr/bin/systemctl restart sshd") from an unreadable sshd line.
# Used only after the sshd headers failed: `a` is the host or the program, `b` the next word.
ANY_HEADER: Final = re.compile(
    r"(?:<\d{1,3}>)?(?P<v5424>1 )?"
    r"(?:[A-Z][a-z]{2} {1,2}\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) +"
    r"(?P<a>\S+)(?: (?P<b>\S+))?"
)
PROGRAM_TOKEN: Final = re.compile(r"\[?(?P<name>[^\s\[\]:]+)(?:\[\d+\])?\]?:$")
RFC3339_TS: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$"
)


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
        self._classic_cache: dict[str, When | None] = {}  # "Mar  3 00:17:22" -> its time
        self._hours: dict[str, When | None] = {}  # "Mar  3 00" -> see _hour_start
        self._hosts: dict[str, str] = {}  # host names of the common header, checked
        self._day_years: dict[str, int] = {}  # "Mar  3" -> see _day_year

    # -- timestamps --

    def _classic_when(self, stamp: str) -> When | None:
        """The time of a classic stamp, "Mar  3 00:17:22" (the day padded or not)."""
        # Many lines share a second: their time is one dict look-up.
        cache = self._classic_cache
        if stamp in cache:
            return cache[stamp]
        when = self._classic_second(stamp)
        if len(cache) > 10_000:
            cache.clear()
        cache[stamp] = when
        return when

    def _classic_second(self, stamp: str) -> When | None:
        mon, day, time = stamp[:3], int(stamp[4:-9]), stamp[-8:]
        hour, minute, second = int(time[0:2]), int(time[3:5]), int(time[6:8])
        if hour > 23 or minute > 59 or second > 59:
            return None
        # A new second: the year is the day's unless it changes within the day (see _day_year).
        year = self._day_years.get(stamp[:-9])
        if year is None:
            if len(self._day_years) > 1_000:
                self._day_years.clear()
            year = self._day_years[stamp[:-9]] = self._day_year(mon, day)
        if year == NO_YEAR:
            return None
        if year != VARIES:
            # An hour is converted once: where the zone's offset is the same at its first and
            # last second, a time in it is its start plus the minutes and seconds.
            hour_key = stamp[:-6]
            if hour_key in self._hours:
                start = self._hours[hour_key]
            else:
                if len(self._hours) > 1_000:
                    self._hours.clear()
                start = self._hours[hour_key] = self._hour_start(year, MONTHS[mon], day, hour)
            if start is not None:
                return (start[0] + minute * 60 + second, start[1])
        ts = self._classic_ts(mon, day, time)
        return None if ts is None else _when(ts)

    def _hour_start(self, year: int, month: int, day: int, hour: int) -> When | None:
        """The time of an hour's first second if its offset holds all hour, else None (a change
        of offset within the hour: each second is converted)."""
        first = datetime(year, month, day, hour, tzinfo=self.zone)
        if first.utcoffset() != first.replace(minute=59, second=59).utcoffset():
            return None
        return _when(first)

    def _day_year(self, mon: str, day: int) -> int:
        """The year of every classic time on this day, NO_YEAR if no time on it is valid, or VARIES
        when the year changes within the day (the day `now` + 1 day falls on). The year can only
        step back as the time of day grows, so the day's first and last second decide."""
        first = self._classic_ts(mon, day, "00:00:00")
        last = self._classic_ts(mon, day, "23:59:59")
        if first is None and last is None:
            return NO_YEAR
        if first is not None and last is not None and first.year == last.year:
            return first.year
        return VARIES

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
        event = self._common(line)
        if event is not None:
            return event
        m = COMMON_HEADER.match(line)
        if m is not None:
            stamp, host, prog, pid = m.groups()
            return self._event(self._classic_when(stamp), host, prog, _pid(pid), line[m.end() :])
        first = line[:1]
        if first == "<":
            m = RFC5424_HEADER.match(line)
            if m is not None:
                ts = self.rfc3339_ts(m["ts"])
                return self._event(
                    None if ts is None else _when(ts),
                    m["host"],
                    m["prog"],
                    _pid(m["pid"]),  # "-" if none
                    # RFC 5424 lets a UTF-8 message start with a byte order mark.
                    line[m.end() :].removeprefix("\ufeff"),
                )
            first = line[line.find(">") + 1 : line.find(">") + 2]
        if first.isdigit():
            m = RFC3339_HEADER.match(line)
            if m is None:
                return _unreadable(line)
            ts = self.rfc3339_ts(m["ts"])
            return self._event(
                None if ts is None else _when(ts),
                m["host"],
                m["prog"],
                _pid(m["pid"]),
                line[m.end() :],
            )
        m = CLASSIC_HEADER.match(line)
        if m is None:
            return _unreadable(line)
        stamp, host, prog, pid = m.groups()  # the pattern's groups, in order
        return self._event(self._classic_when(stamp), host, prog, _pid(pid), line[m.end() :])

    def _common(self, line: str) -> Event | Malformed | None:
        """The common classic header, "Mar  3 00:17:22 host sshd[123]: ", read without a regex
        once its stamp and host are known good: exactly what COMMON_HEADER would find, or None
        to leave the line to the patterns."""
        stamp = line[:15]
        when = self._classic_cache.get(stamp)
        if when is None:
            if stamp in self._classic_cache or not COMMON_STAMP.fullmatch(stamp):
                return None
            when = self._classic_when(stamp)
            if when is None:
                return None
        if line.find(" ", 15) != 15:
            return None
        space = line.find(" ", 16)
        if space <= 16:
            return None
        # A host is checked once, then looked up: a log names few.
        host = self._hosts.get(line[16:space])
        if host is None:
            host = line[16:space]
            if not COMMON_HOST.fullmatch(host):
                return None
            if len(self._hosts) > 1_000:
                self._hosts.clear()
            self._hosts[host] = host
        bracket = line.find("[", space + 1)
        program = line[space + 1 : bracket]
        if bracket == -1 or not (program == "sshd" or program == "sshd-session" or program == "sshd-auth"):
            return None
        end = line.find("]: ", bracket + 1)
        pid = _pid(line[bracket + 1 : end])
        msg = line[end + 3 :]
        if end == -1 or pid is None or msg.startswith("[ID "):
            return None
        return self._event(when, host, program, pid, msg)

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
        return self._event(_when(ts.astimezone(self.zone)), host, program, _pid(pid), message, boot_id)

    def _event(
        self,
        when: When | None,
        host: str | None,
        program: str,
        pid: int | None,
        msg: str,
        boot_id: str = "",
    ) -> Event | Malformed:
        if when is None:
            return MALFORMED
        msg = msg.rstrip()
        if program == "sshd(pam_unix)":
            msg = _old_pam(msg)
        fields = classify(msg)
        # Positional, in Event's field order (fields.get compiles to a direct call; a bound
        # method would be called as a Python object).
        return Event(
            when[0],
            when[1],
            self.zone,
            host or "",
            program,
            pid,
            fields["kind"],
            fields.get("user"),
            fields.get("source_ip"),
            fields.get("source_port"),
            fields.get("method"),
            fields.get("count", 1),
            fields.get("invalid_user", False),
            msg,
            boot_id,
            fields.get("source_name"),
            fields.get("key"),
        )


def _pid(text: str | None) -> int | None:
    """A header's PID, None if it has none or it is not a number."""
    if not text or not text.isdigit():
        return None
    try:
        return int(text)
    except ValueError:  # digits that are not decimal: "²"
        return None


def _when(ts: datetime) -> When:
    """An aware time, in the zone days are counted in, as (epoch, day)."""
    return (ts.timestamp(), ts.date().isoformat())


def _old_pam(msg: str) -> str:
    """An old Red Hat "sshd(pam_unix)" message as pam_unix writes it today."""
    if msg[:1].isdigit():  # "2 more authentication failures; ..."
        return f"PAM {msg}"
    for start, prefix in OLD_PAM_PREFIXES:
        if msg.startswith(start):
            return prefix + msg
    return f"pam_unix(sshd:auth): {msg}"


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
