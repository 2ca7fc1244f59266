"""What the agent API promises, in one place: the counts of a day and of a source address, what
each means, and the limits both sides hold to. Pure Python, no Django.

The agent's models, serializers, metrics and commands, the central server's answer checks,
tables and API, and the dashboard's tables and charts all iterate these lists, so a count is
added here (and to the accounting in sessions.py, a model field and a migration), not in ten
places. The meanings are the schema's help texts and the README's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final


@dataclass(frozen=True)
class Count:
    name: str  # the JSON field and the model field
    label: str  # how a table header or a chart legend says it
    meaning: str  # one sentence: the schema's help text
    of: str = "connections"  # what it counts: connections, attempts or addresses


# A day's counts, for the connections that began that day (in the agent's TIME_ZONE), in the
# order of the agent's JSON. The tracker tallies all but unique_sources (see TALLIED).
COUNTS: Final = (
    Count(
        "sessions", "Connections", "Connections: one per-connection sshd, sshd-session or sshd-auth process."
    ),
    Count("accepted", "Accepted", "Connections with an Accepted line (a login)."),
    Count(
        "failed_attempts",
        "Failed attempts",
        "Failed lines ('message repeated N times' counts N).",
        "attempts",
    ),
    Count(
        "failed_sessions", "Failed connections", "Connections with at least one failed attempt and no login."
    ),
    Count("invalid_user_sessions", "Invalid user", "Connections with an invalid-user line."),
    Count(
        "preauth_only",
        "Pre-auth only",
        "Connections with no Accepted, Failed or invalid-user line (scanners).",
    ),
    Count(
        "unique_sources",
        "Unique sources",
        "Distinct source addresses of those connections (host names are listed, not counted).",
        "addresses",
    ),
)
COUNT_NAMES: Final = tuple(count.name for count in COUNTS)
# What the connection tracker adds up (unique_sources is the number of the day's address rows).
TALLIED: Final = COUNT_NAMES[:-1]
COUNT_BY_NAME: Final = {count.name: count for count in COUNTS}
# The counts of connections (each a subset of `sessions`): what can be drawn or exported together.
CONNECTION_COUNTS: Final = tuple(count.name for count in COUNTS if count.of == "connections")

# A source address's counts on a day (also those of a user name).
ADDRESS_COUNTS: Final = (
    Count("sessions", "Connections", "Connections from the address."),
    Count("failed_attempts", "Failed attempts", "Failed attempts from the address.", "attempts"),
    Count("accepted", "Accepted", "Logins from the address."),
)
ADDRESS_COUNT_NAMES: Final = tuple(count.name for count in ADDRESS_COUNTS)

# Limits both sides hold to: the agent never sends more, the central server refuses more.
TOP: Final = 10  # busiest sources and users in a day object
MAX_USERS_PER_SOURCE: Final = 20  # distinct user names listed per address and day
MAX_USER_LENGTH: Final = 128  # characters of a user name kept
MAX_ADDRESS_LENGTH: Final = 255  # characters of a source as sshd wrote it
PAGE_ROWS: Final = 500  # source rows per page, unless page_size says otherwise
MAX_PAGE_ROWS: Final = 1000
RANGE_DAYS: Final = 30  # days in a range without `since`
MAX_RANGE_DAYS: Final = 400


# Digits and dots: an IPv4 address as sshd writes it (an IPv6 one always has a colon).
IPV4_CHARS: Final = "0123456789."


def is_address(source: str) -> bool:
    """Whether a source as sshd or PAM wrote it is an address rather than a host name. sshd writes
    addresses; a name (PAM's rhost under UseDNS yes, "UNKNOWN") is chosen by whoever controls the
    PTR record, so it is listed as a name and never counted as an address. sshd refuses PTR names
    that look numeric, so a name always has a character an address does not. The same test in SQL:
    models.CountsQuerySet.addresses()."""
    return ":" in source or (source != "" and source.strip(IPV4_CHARS) == "")


class RangeError(ValueError):
    """A date range that breaks the rule, with a sentence saying how."""


def date_range(
    since: date | None, until: date | None, today: date, default_days: int = RANGE_DAYS
) -> tuple[date, date]:
    """The range rule of both APIs and the dashboard: until defaults to today and since to
    `default_days` days ending until; since <= until; at most MAX_RANGE_DAYS days."""
    until = until or today
    if since is None:
        try:
            since = until - timedelta(days=default_days - 1)
        except OverflowError:  # until in the first days of year 1
            raise RangeError("until is too early for the default range; give since.") from None
    if since > until:
        raise RangeError("since must not be after until.")
    if (until - since).days + 1 > MAX_RANGE_DAYS:
        raise RangeError(f"The range may cover at most {MAX_RANGE_DAYS} days.")
    return since, until
