"""One agent, one entry: which inventory entry counts an agent that several entries reach.

Two entries reach the same agent when their URLs are the same once normalised (models.
normalised_url: scheme and host case, default port, trailing slash), or when their agents report
the same host name with the same token (an agent has one token: two machines with tokens of their
own are two agents, whatever names they give). One entry then polls and counts the agent; each
other one is a `duplicate` (duplicate_of, and last_error says which entry counts it and why): it
stores nothing, and what it stored before is deleted, so that no total counts the agent twice.

Which entry counts it:

- The same URL: the older entry (the lower id). The inventory alone says so, before any request,
  so concurrent polls of both entries agree without seeing each other.
- The same reported name: the entry whose poll reporting the name completed first keeps it
  (agent_host_since), so an agent that starts claiming another host's name (a compromised host
  that knows a token the fleet shares) is the one that loses, never the host it names. When both
  first report it in polls that overlap (one concurrent round), the older entry. Each poll decides
  under a lock on the name (polling.identify), and a poll whose entry was made a duplicate
  meanwhile writes nothing more (polling.counted), so one round can end with neither two entries
  counted nor none.

Only enabled entries take part: disabling one lets the other count the agent. Every function
here runs in its caller's transaction.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.db import connection
from django.db.models import OuterRef, Q
from django.utils import timezone

from .fetching import PollError
from .models import DUPLICATE, FleetAddress, Host, HostDay, HostLogin, normalised_url


class Duplicate(PollError):
    """This entry's agent is counted by another entry (the sentence says which and why)."""


def url_reason(first: Host) -> str:
    return (
        f"{first.name} polls the same agent URL and counts it: this entry stores nothing. Delete it, "
        "or correct its URL."
    )


def name_reason(name: str, first: Host) -> str:
    return (
        f"The agent reports the host name {name[:60]!r} with the same token as {first.name}'s, which "
        f"counts it: this entry stores nothing. Delete it or correct its URL (two agents need tokens "
        "of their own)."
    )


def older_at_url(host: Host) -> Host | None:
    """The oldest enabled entry with this entry's URL (normalised), if it is older than this one."""
    return (
        Host.objects.enabled()
        .filter(agent_url=normalised_url(host.url), pk__lt=host.pk)
        .order_by("pk")
        .first()
    )


def older_entries():
    """older_at_url() as a subquery of the entry's own row, for Exists(): whether an older enabled
    entry has its stored URL (the caller checks that it is the normalised one)."""
    return Host.objects.enabled().filter(agent_url=OuterRef("agent_url"), pk__lt=OuterRef("pk"))


def first_with_name(host: Host, name: str) -> Host:
    """Record that host's agent reports `name` and return the entry that counts that agent: host
    itself (every other enabled entry reporting it with the same token is then made its
    duplicate) or another one."""
    changed = host.agent_host != name
    # A write first: on SQLite it takes the database's write lock, which orders this decision
    # after every other one in flight. PostgreSQL takes the name's lock below instead, and needs
    # it only when the name changed (most polls report the name they reported before).
    if changed or connection.vendor != "postgresql":
        Host.objects.filter(pk=host.pk).update(
            agent_host=name, **({"agent_host_since": None} if changed else {})
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [name_lock(name)])
    entries = list(
        Host.objects.filter(Q(pk=host.pk) | Q(enabled=True, agent_host=name, token=host.token)).only(
            "pk", "name", "agent_host", "agent_host_since", "duplicate_of"
        )
    )
    if any(entry.pk == host.pk and entry.agent_host != name for entry in entries):
        # Another entry's decision demoted this one since its poll began (which cleared the name).
        Host.objects.filter(pk=host.pk).update(agent_host=name)
    first = min(entries, key=lambda entry: rank(entry, host.polling_since or timezone.now()))
    if first.pk == host.pk:
        for other in entries:
            if other.pk != host.pk:
                demote(other.pk, first, name_reason(name, first))
        # Read now, not when the poll began: another entry may have demoted this one meanwhile.
        if first.duplicate_of_id is not None:
            Host.objects.filter(pk=host.pk).update(duplicate_of=None)
    return first


def rank(entry: Host, started: datetime) -> tuple:
    """Who keeps a name: an entry that had it counted before this poll began (the earliest), then
    the older entry. Reports counted after this poll began overlap it: they rank by age alone."""
    since = entry.agent_host_since
    if since is not None and since < started:
        return (0, since.timestamp(), entry.pk)
    return (1, 0.0, entry.pk)


def demote(pk: int, first: Host, reason: str) -> None:
    """Make entry `pk` a duplicate of `first`: what it stored goes (its agent's days are first's),
    its claim on a name and its polled days with them."""
    Host.objects.filter(pk=pk).update(
        duplicate_of=first,
        state=DUPLICATE,
        last_error=reason[:300],
        agent_host="",
        agent_host_since=None,
        polled_through=None,
    )
    HostDay.objects.filter(host_id=pk).delete()
    FleetAddress.objects.remove_host(pk)  # and its sources
    HostLogin.objects.filter(host_id=pk).delete()


def name_lock(name: str) -> int:
    """pg_advisory_xact_lock's key for a reported host name (a signed 64-bit number)."""
    digest = hashlib.blake2b(f"alpha agent host {name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
