"""What agents answer, checked field by field before anything is stored. Pure Python, no Django.

Every agent is untrusted: each document is checked for types, ranges and sizes, and turned into
plain values (dates, aware datetimes, ints, strings). The first problem raises InvalidAnswer
naming the field, e.g. "days[3].sessions: must be a whole number from 0 to 10^12".

Why not DRF serializers: a poll round checks about 600 source rows per host and day, and DRF
spent ~90 us on each (its DateTimeField looks up the current time zone behind a process-wide
lock, which 64 polling threads queue on); these checks take a few microseconds and stay as
strict (stricter: numbers must be JSON numbers, not strings).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, date, datetime, time, timedelta
from socket import AF_INET as _AF_INET
from socket import inet_pton as _inet_pton

from collector.contract import (
    ADDRESS_COUNT_NAMES,
    COUNT_NAMES,
    MAX_ADDRESS_LENGTH,
    MAX_PAGE_ROWS,
    MAX_RANGE_DAYS,
    MAX_USER_LENGTH,
    MAX_USERS_PER_SOURCE,
    TOP,
)

MAX_COUNT = 10**12
MAX_HEALTH_SOURCES = 100

# How far an agent's clock may run ahead of ours before its times are refused.
CLOCK_SKEW = timedelta(days=1)
# A day's first connection begins on that day in the agent's zone: at most 14 hours before its
# midnight in UTC, 12 after (a day of margin on each side).
DAY_MARGIN = timedelta(days=1)
# A last event older than this is not a date a log could hold (and not one to store).
OLDEST_EVENT = timedelta(days=366 * 20)

# A source that sshd wrote as a name rather than an address (UseDNS, or "UNKNOWN"): host-name
# characters only, never markup.
NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")


class InvalidAnswer(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def inside(self, outer: str) -> InvalidAnswer:
        """The same problem, named from the enclosing document: "ip" inside "results[3]"."""
        return InvalidAnswer(f"{outer}.{self.field}" if self.field else outer, self.problem)


def each(values: list, check, field: str) -> list:
    """check() every item of a list; a problem is named with its item's index."""
    try:
        return [check(value) for value in values]
    except InvalidAnswer:
        # Names are built only for the item that failed: a page has a thousand that pass.
        for i, value in enumerate(values):
            try:
                check(value)
            except InvalidAnswer as exc:
                raise exc.inside(f"{field}[{i}]") from None
        raise


# --- Fields -------------------------------------------------------------------------------------


def count(value, field: str) -> int:
    # bool is an int in Python, but `true` is not a count.
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise InvalidAnswer(field, "must be a whole number from 0 to 10^12")
    return value


def text(value, field: str, max_length: int, blank: bool = False) -> str:
    if type(value) is not str:
        raise InvalidAnswer(field, "must be a string")
    if len(value) > max_length:
        raise InvalidAnswer(field, f"must be at most {max_length} characters")
    if not blank and not value.strip():
        raise InvalidAnswer(field, "must not be blank")
    if "\x00" in value:  # PostgreSQL text cannot hold it
        raise InvalidAnswer(field, "must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            raise InvalidAnswer(field, "must be valid Unicode") from None
    return value


def day(value, field: str) -> date:
    if type(value) is not str or len(value) != 10:
        raise InvalidAnswer(field, "must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidAnswer(field, "must be a date as YYYY-MM-DD") from None


def moment(value, field: str, earliest: datetime, latest: datetime) -> datetime:
    """An aware date and time between `earliest` and `latest`: a time from an agent is stored
    only if it is plausible (and so always one both databases can read back)."""
    if type(value) is not str or len(value) > 40:
        raise InvalidAnswer(field, "must be an ISO 8601 date and time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidAnswer(field, "must be an ISO 8601 date and time") from None
    if parsed.tzinfo is UTC:  # what agents send ("Z"): nothing to convert
        in_utc = parsed
    elif parsed.utcoffset() is None:
        raise InvalidAnswer(field, "must include a UTC offset")
    else:
        try:
            in_utc = parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+14:00 is before the first UTC time there is
            in_utc = None
    if in_utc is None or not earliest <= in_utc <= latest:
        raise InvalidAnswer(field, f"must be between {_utc(earliest)} and {_utc(latest)} UTC")
    return parsed


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


def address(value, field: str) -> bool:
    """A source as the agent's parser took it from sshd's line: True for an IP address (what a
    fleet's distinct addresses count), False for a name."""
    if type(value) is str and len(value) <= 15:
        # Most sources are IPv4 addresses: inet_pton takes exactly the dotted quads that
        # ipaddress takes (no leading zeros, no short forms) in a tenth of its time.
        try:
            _inet_pton(_AF_INET, value)
            return True
        except (OSError, ValueError, UnicodeError):
            pass
    text(value, field, MAX_ADDRESS_LENGTH)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not NAME.fullmatch(value):
            raise InvalidAnswer(field, "must be an IP address or a host name") from None
        return False
    return True


def at_most(values: dict, name: str, limit_name: str, limit: int, field: str = "") -> None:
    if values[name] > limit:
        where = f"{field}." if field else ""
        raise InvalidAnswer(f"{where}{name}", f"must not be more than the day's {limit_name} ({limit})")


def items(value, field: str, max_length: int) -> list:
    if type(value) is not list:
        raise InvalidAnswer(field, "must be a list")
    if len(value) > max_length:
        raise InvalidAnswer(field, f"must have at most {max_length} items")
    return value


def mapping(value, field: str) -> dict:
    if type(value) is not dict:
        raise InvalidAnswer(field, "must be an object")
    return value


# --- Documents ----------------------------------------------------------------------------------


def health(data, now: datetime) -> dict:
    """/api/v1/health/: the agent's version, whether it follows its logs, and per log source its
    unread bytes, malformed and unknown lines and last event (summed or latest over sources)."""
    data = mapping(data, "health")
    earliest, latest = now - OLDEST_EVENT, now + CLOCK_SKEW
    following = data.get("following", False)
    if type(following) is not bool:
        raise InvalidAnswer("following", "must be true or false")
    sources = each(items(data.get("sources"), "sources", MAX_HEALTH_SOURCES), source_health, "sources")
    events = [
        moment(s["last_event_at"], f"sources[{i}].last_event_at", earliest, latest)
        for i, s in enumerate(sources)
        if s.get("last_event_at") is not None
    ]
    problem = data.get("source_problem")  # agents before 0.3 do not send it
    name = data.get("host")  # ALPHA_HOST_NAME; without it, an entry is known by its URL alone
    return {
        "host": None if name is None else text(name, "host", MAX_ADDRESS_LENGTH).strip().lower(),
        "agent_version": text(data.get("agent_version"), "agent_version", 40),
        "following": following,
        "source_problem": None if problem is None else text(problem, "source_problem", 300),
        "unread_bytes": _sum(sources, "unread_bytes"),
        "malformed_lines": _sum(sources, "malformed_lines"),
        "unknown_last_24h": _sum(sources, "unknown_last_24h"),
        "last_event_at": max(events) if events else None,
    }


def source_health(data) -> dict:
    return mapping(data, "")


def _sum(sources: list[dict], name: str) -> int | None:
    """A health figure summed over the sources that report it (None if none does)."""
    values = [
        count(s[name], f"sources[{i}].{name}") for i, s in enumerate(sources) if s.get(name) is not None
    ]
    return sum(values) if values else None


def day_counts(data) -> dict:
    data = mapping(data, "")
    row = {"date": day(data.get("date"), "date")}
    for name in COUNT_NAMES:
        row[name] = count(data.get(name), name)
    # Each a subset of the day's connections; accepted, failed and scanner-only ones are apart.
    for name in COUNT_NAMES[1:]:
        if name != "failed_attempts":
            at_most(row, name, "sessions", row["sessions"])
    if row["accepted"] + row["failed_sessions"] + row["preauth_only"] > row["sessions"]:
        raise InvalidAnswer("sessions", "must be at least accepted + failed_sessions + preauth_only")
    if row["failed_sessions"] > row["failed_attempts"]:
        raise InvalidAnswer("failed_sessions", "must not be more than failed_attempts")
    return row


def day_range(data) -> list[dict]:
    """/api/v1/logins/?since&until: the counts of each day."""
    return each(items(mapping(data, "day list").get("days"), "days", MAX_RANGE_DAYS), day_counts, "days")


def day_detail(data) -> dict:
    """/api/v1/logins/<date>/: the day's counts and its busiest user names."""
    try:
        row = day_counts(data)
    except InvalidAnswer as exc:
        raise exc.inside("day") from None
    row["top_users"] = each(items(data.get("top_users"), "top_users", TOP), top_user, "top_users")
    for i, user in enumerate(row["top_users"]):
        for name in ADDRESS_COUNT_NAMES:
            at_most(user, name, name, row[name], f"top_users[{i}]")
    return row


def top_user(data) -> dict:
    data = mapping(data, "")
    row = {"user": text(data.get("user"), "user", MAX_USER_LENGTH, blank=True)}
    row.update({name: count(data.get(name), name) for name in ADDRESS_COUNT_NAMES})
    return row


def source_page(data, of_day: date, now: datetime) -> tuple[list[dict], str | None]:
    """/api/v1/sources/<date>/: one page of the day's source addresses, and the next page's URL.
    Times must fit the day (`of_day`) and not be later than `now` allows."""
    return page(data, "source page", of_day, now, source)


def page(data, what: str, of_day: date, now: datetime, check) -> tuple[list[dict], str | None]:
    """One page of a day's cursor-paginated list (sources, logins): its rows, each check()ed with
    the times that fit the day, and the next page's URL."""
    data = mapping(data, what)
    next_url = data.get("next")
    if next_url is not None:
        text(next_url, "next", 2000)
        if not next_url.startswith(("http://", "https://")):
            raise InvalidAnswer("next", "must be an http(s) URL or null")
    midnight = datetime.combine(of_day, time(), tzinfo=UTC)
    earliest = midnight - DAY_MARGIN
    # What began that day began within it (and not later than now allows); a connection that
    # began that day may go on for days: its last line is bounded by now.
    first_latest = min(midnight + timedelta(days=1) + DAY_MARGIN, now + CLOCK_SKEW)
    latest = now + CLOCK_SKEW

    def checked(row) -> dict:
        return check(row, earliest, first_latest, latest)

    return each(items(data.get("results"), "results", MAX_PAGE_ROWS), checked, "results"), next_url


def source(data, earliest: datetime, first_latest: datetime, latest: datetime) -> dict:
    # A page holds up to a thousand of these: the checks are the same as elsewhere, written out.
    if type(data) is not dict:
        raise InvalidAnswer("", "must be an object")
    get = data.get
    ip = get("ip")
    row = {"ip": ip, "is_address": address(ip, "ip")}
    for name in ADDRESS_COUNT_NAMES:
        value = get(name)
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            raise InvalidAnswer(name, "must be a whole number from 0 to 10^12")
        row[name] = value
    users = get("users")
    if type(users) is list and len(users) <= MAX_USERS_PER_SOURCE and all(map(_plain_user, users)):
        row["users"] = users
    else:  # the same checks, naming the problem
        row["users"] = each(items(users, "users", MAX_USERS_PER_SOURCE), user_name, "users")
    first_seen = row["first_seen"] = moment(get("first_seen"), "first_seen", earliest, first_latest)
    last_seen = row["last_seen"] = moment(get("last_seen"), "last_seen", first_seen, latest)
    if row["accepted"] > row["sessions"]:
        at_most(row, "accepted", "sessions", row["sessions"])
    # When it failed and first logged in (agents before 1.5 do not send these: null). Each
    # between the source's first and last sighting.
    for name in ("first_failed", "last_failed", "first_accepted"):
        value = get(name)
        row[name] = None if value is None else moment(value, name, first_seen, last_seen)
    if (row["first_failed"] is None) != (row["last_failed"] is None) or (
        row["first_failed"] is not None and row["first_failed"] > row["last_failed"]
    ):
        raise InvalidAnswer("last_failed", "must be given with first_failed, and not before it")
    return row


def _plain_user(value) -> bool:
    """A user name that user_name() takes as it is: a short ASCII string without NUL."""
    return type(value) is str and len(value) <= MAX_USER_LENGTH and value.isascii() and "\x00" not in value


def day_with_sources(row: dict, sources: list[dict]) -> None:
    """The day's counts (fetched after its sources, so never behind them) must hold its sources:
    no more addresses than unique_sources, no more connections, failures or logins in total."""
    # Host names (PAM's rhost where sshd wrote no address) and addresses the listener only
    # refused are listed but not counted.
    addresses = sum(1 for s in sources if s["sessions"] and s["is_address"])
    if addresses > row["unique_sources"]:
        raise InvalidAnswer(
            "unique_sources", f"is {row['unique_sources']} but the source list has {addresses} addresses"
        )
    for name in ADDRESS_COUNT_NAMES:
        total = sum(s[name] for s in sources)
        if total > row[name]:
            raise InvalidAnswer(name, f"is {row[name]} but the day's sources add up to {total}")


def user_name(value) -> str:
    return text(value, "", MAX_USER_LENGTH, blank=True)


def login_page(data, of_day: date, now: datetime) -> tuple[list[dict], str | None]:
    """/api/v1/logins/<date>/accepted/: one page of the day's logins, and the next page's URL."""
    return page(data, "login page", of_day, now, login)


def login(data, earliest: datetime, at_latest: datetime, latest: datetime) -> dict:
    data = mapping(data, "")
    row = {"at": moment(data.get("at"), "at", earliest, at_latest)}
    row["user"] = text(data.get("user"), "user", MAX_USER_LENGTH, blank=True)
    row["ip"] = data.get("ip")
    address(row["ip"], "ip")
    port = data.get("port")
    if port is not None and (type(port) is not int or not 0 <= port <= 65535):
        raise InvalidAnswer("port", "must be a port number or null")
    row["port"] = port
    row["method"] = text(data.get("method"), "method", 64, blank=True)
    row["key"] = text(data.get("key", ""), "key", 160, blank=True)
    ended = data.get("ended_at")
    row["ended_at"] = None if ended is None else moment(ended, "ended_at", row["at"], latest)
    return row
