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

from datetime import date, datetime

from collector.sessions import DAY_FIELDS

MAX_COUNT = 10**12
MAX_RANGE_DAYS = 400
MAX_TOP_USERS = 10
MAX_PAGE_ROWS = 1000
MAX_USERS_PER_SOURCE = 20
MAX_HEALTH_SOURCES = 100

# The day row's counts: the agent's own definitions (collector.sessions) and its distinct sources.
DAY_COUNTS = (*DAY_FIELDS, "unique_sources")


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


def moment(value, field: str) -> datetime:
    if type(value) is not str or len(value) > 40:
        raise InvalidAnswer(field, "must be an ISO 8601 date and time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidAnswer(field, "must be an ISO 8601 date and time") from None
    if parsed.utcoffset() is None:
        raise InvalidAnswer(field, "must include a UTC offset")
    return parsed


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


def health(data) -> dict:
    """/api/v1/health/: the agent's version, whether it follows its logs, and per log source its
    unread bytes, malformed and unknown lines and last event (summed or latest over sources)."""
    data = mapping(data, "health")
    following = data.get("following", False)
    if type(following) is not bool:
        raise InvalidAnswer("following", "must be true or false")
    sources = each(items(data.get("sources"), "sources", MAX_HEALTH_SOURCES), source_health, "sources")
    events = [
        moment(s["last_event_at"], f"sources[{i}].last_event_at")
        for i, s in enumerate(sources)
        if s.get("last_event_at") is not None
    ]
    return {
        "agent_version": text(data.get("agent_version"), "agent_version", 40),
        "following": following,
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
    for name in DAY_COUNTS:
        row[name] = count(data.get(name), name)
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
    row["top_users"] = each(items(data.get("top_users"), "top_users", MAX_TOP_USERS), top_user, "top_users")
    return row


def top_user(data) -> dict:
    data = mapping(data, "")
    return {
        "user": text(data.get("user"), "user", 128, blank=True),
        "sessions": count(data.get("sessions"), "sessions"),
        "failed_attempts": count(data.get("failed_attempts"), "failed_attempts"),
        "accepted": count(data.get("accepted"), "accepted"),
    }


def source_page(data) -> tuple[list[dict], str | None]:
    """/api/v1/sources/<date>/: one page of the day's source addresses, and the next page's URL."""
    data = mapping(data, "source page")
    next_url = data.get("next")
    if next_url is not None:
        text(next_url, "next", 2000)
        if not next_url.startswith(("http://", "https://")):
            raise InvalidAnswer("next", "must be an http(s) URL or null")
    return each(items(data.get("results"), "results", MAX_PAGE_ROWS), source, "results"), next_url


def source(data) -> dict:
    data = mapping(data, "")
    return {
        "ip": text(data.get("ip"), "ip", 255),
        "sessions": count(data.get("sessions"), "sessions"),
        "failed_attempts": count(data.get("failed_attempts"), "failed_attempts"),
        "accepted": count(data.get("accepted"), "accepted"),
        "users": each(items(data.get("users"), "users", MAX_USERS_PER_SOURCE), user_name, "users"),
        "first_seen": moment(data.get("first_seen"), "first_seen"),
        "last_seen": moment(data.get("last_seen"), "last_seen"),
    }


def user_name(value) -> str:
    return text(value, "", 128, blank=True)
