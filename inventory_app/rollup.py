"""How the fleet's row of an address and day (models.FleetAddress) follows the rows its hosts
stored (HostSource): plain values in, plain values out, no Django.

A fleet row holds what a page of addresses shows without reading every host's row: its counts
summed, the hosts that saw it as a bit set (bit n for host id n: a range's distinct hosts are the
bits of its days OR-ed together), the user names tried, each with the number of hosts whose row
lists it, and when it was first and last seen. Each follows a host's row as it comes, changes
or goes, exactly: only a first or last time the host held and no longer does is read again
from the hosts' rows.
"""

from __future__ import annotations

from collections.abc import Iterable

# A source row as the rollup reads it (HostSourceQuerySet.rollup_rows, polling's checked rows).
IP, IS_ADDRESS, SESSIONS, FAILED, ACCEPTED, USERS, FIRST_SEEN, LAST_SEEN = range(8)
COUNTS = slice(SESSIONS, ACCEPTED + 1)


def to_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "little")


def from_bytes(stored: bytes | memoryview | None) -> int:
    return int.from_bytes(bytes(stored or b""), "little")


def hosts_in(stored: Iterable[bytes | memoryview | None]) -> int:
    """How many hosts the days' bit sets hold together: each host once."""
    value = 0
    for one in stored:
        value |= from_bytes(one)
    return value.bit_count()


def changed(stored: tuple, host_id: int, old: tuple | None, new: tuple | None) -> tuple[tuple, bool]:
    """A fleet row's (host bits, users, first_seen, last_seen) after one host's row of it went
    from `old` to `new` (None: it had none, or has none now), and whether its first or last
    seen must be read again from the hosts' rows (the host's old row held it and the new one
    does not). `users` counts, for each name, the hosts whose row lists it, so that a host's
    names leave exactly."""
    host_bits, users, first, last = stored
    users = dict(users or {})
    for name in old[USERS] if old else ():
        users[name] = users.get(name, 0) - 1
        if users[name] <= 0:
            del users[name]
    for name in new[USERS] if new else ():
        users[name] = users.get(name, 0) + 1
    value = from_bytes(host_bits)
    value = value | 1 << host_id if new else value & ~(1 << host_id)
    lost = old is not None and (
        (old[FIRST_SEEN] == first and (new is None or new[FIRST_SEEN] > first))
        or (old[LAST_SEEN] == last and (new is None or new[LAST_SEEN] < last))
    )
    if new is not None:
        first = new[FIRST_SEEN] if first is None else min(first, new[FIRST_SEEN])
        last = new[LAST_SEEN] if last is None else max(last, new[LAST_SEEN])
    return (to_bytes(value), users, first, last), lost
