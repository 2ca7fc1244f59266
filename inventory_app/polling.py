"""Polling agents: fetch each host's counts through its agent API and store them. Plain functions,
called by Celery tasks (tasks.py) and by `manage.py poll_hosts` alike.

Every agent is untrusted input (fetching.py bounds each answer in bytes and time): a poll has a
total budget, a round an end, and every field is checked (answers.py) before anything is
stored, so a slow, dead, lying or malicious agent costs at most its budget and an error on its
own host, and never holds up a round.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from collector.contract import COUNT_NAMES, MAX_PAGE_ROWS

from . import answers, identity
from .fetching import Agent, Deadline, PollError, Stopped, first_line, hang_up
from .identity import Duplicate
from .models import (
    DOWN,
    DUPLICATE,
    NO_SOURCE,
    OK,
    STALE,
    FleetAddress,
    Host,
    HostDay,
    HostLogin,
    HostSource,
    normalised_url,
)

logger = logging.getLogger(__name__)

# A first round over 1,000 hosts allocates some ten million short-lived objects (parsed JSON,
# checked values: about twenty per source row), none in a reference cycle, so reference counting
# frees them. With Python's default threshold (700 allocations) the cyclic garbage collector ran
# thousands of times per round and took about 15 % of its CPU; rounds and Celery workers
# (alphaproject/celery.py) use this one instead.
GC_THRESHOLD = (50_000, 20, 100)

# What poll_round() reports for hosts it did not poll.
SKIPPED = "skipped"  # claimed by another poll
NOT_REACHED = "not reached"  # the round ended before their turn
STOPPED = "stopped"  # the round was stopped (SIGTERM) first


def checked(check, data, what: str, *args):
    """Run one of answers.py's checks, turning its complaint into the host's one-sentence error."""
    try:
        return check(data, *args)
    except answers.InvalidAnswer as exc:
        raise PollError(f"The agent sent an invalid {what} ({str(exc)[:160]}).") from None


def round_deadline(seconds: float | None = None) -> Deadline:
    seconds = seconds or settings.ALPHA_POLL_ROUND_TIMEOUT
    return Deadline(seconds, f"The polling round ended ({seconds:g} s) before this host's poll finished.")


def poll_budget(parent: Deadline | None) -> Deadline:
    seconds = settings.ALPHA_POLL_BUDGET
    why = f"The poll took longer than its {seconds:g} s budget (ALPHA_POLL_BUDGET); the rest waits for the next round."
    return Deadline(seconds, why, parent=parent)


# --- Polling ------------------------------------------------------------------------------------


# The database failing under a poll (stopped, restarted, unreachable): not the host's fault.
DATABASE_DOWN = (OperationalError, InterfaceError)

# Claims this process made and could not release because the database failed during the poll.
# Left in the database, each would keep its host unpolled for ALPHA_POLL_LEASE after the database
# came back; they are released by this process's next poll instead.
unreleased: dict[int, datetime] = {}
unreleased_lock = threading.Lock()


def claim(host_id: int) -> datetime | None:
    """Mark the host as being polled, unless another poll holds it: a conditional UPDATE, so
    overlapping rounds and workers on several machines never poll one host twice at once.
    Returns the claim's time (what release() needs), None if another poll holds the host."""
    release_unreleased()
    now = timezone.now()
    lease = timedelta(seconds=settings.ALPHA_POLL_LEASE)
    free = Q(polling_since__isnull=True) | Q(polling_since__lt=now - lease)
    return now if Host.objects.filter(pk=host_id).filter(free).update(polling_since=now) == 1 else None


def release(host_id: int, claimed: datetime) -> None:
    """End this poll's claim (and only it: past its lease, another poll may hold the host)."""
    try:
        Host.objects.filter(pk=host_id, polling_since=claimed).update(polling_since=None)
    except DATABASE_DOWN:
        with unreleased_lock:
            unreleased[host_id] = claimed
        raise


def release_unreleased() -> None:
    # Each dropped only once released: if the database still fails, the rest wait for next time.
    for host_id, claimed in list(unreleased.items()):
        Host.objects.filter(pk=host_id, polling_since=claimed).update(polling_since=None)
        with unreleased_lock:
            if unreleased.get(host_id) == claimed:
                del unreleased[host_id]


def poll_host(host_id: int, within: Deadline | None = None) -> str:
    """Poll one host if no other poll holds it, within its budget (and `within`, the round's
    end). Returns its state afterwards ("" if skipped)."""
    claimed = claim(host_id)
    if claimed is None:
        return ""
    host = None
    try:
        # With whether an older entry polls the same URL (check_url), in the same query.
        host = Host.objects.annotate(older_at_url=Exists(identity.older_entries())).get(pk=host_id)
        with agent_errors(host):
            fetch_and_store(host, Agent.for_host(host, poll_budget(within)))
        return host.state
    except Stopped:
        return STOPPED  # nothing recorded: the next round polls the host again
    finally:
        hang_up()
        # record_success() and record_failure() release the host in their own UPDATE.
        if host is None or host.polling_since is not None:
            release(host_id, claimed)


@contextlib.contextmanager
def agent_errors(host: Host) -> Iterator[None]:
    """What went wrong talking to the host's agent becomes its last_error (Stopped passes
    through: a stopped round records nothing)."""
    try:
        yield
    except Duplicate as exc:
        # Recorded as it was found (identity.demote): the entry that counts the agent, and why.
        host.state, host.last_error = DUPLICATE, str(exc)[:300]
        Host.objects.filter(pk=host.pk).update(last_poll_at=timezone.now())
    except PollError as exc:
        record_failure(host, str(exc))
    except (Stopped, *DATABASE_DOWN):
        raise  # the database failing is not the host's fault: nothing recorded on it
    except Exception:
        logger.exception("Polling %s failed unexpectedly", host.name)
        record_failure(host, "Polling failed unexpectedly; see the central server's log.")


def fetch_and_store(host: Host, agent: Agent) -> None:
    check_url(host)
    health = checked(
        answers.health,
        agent.get("/api/v1/health/", read_timeout=settings.ALPHA_POLL_HEALTH_TIMEOUT),
        "health",
        timezone.now(),
    )
    identify(host, health["host"])
    today = timezone.localdate()
    backfill_start = today - timedelta(days=settings.ALPHA_BACKFILL_DAYS - 1)
    since = (
        max(backfill_start, host.polled_through + timedelta(days=1))
        if host.polled_through
        else backfill_start
    )
    # One day past today: an agent in a zone ahead of ours may already count tomorrow.
    until = today + timedelta(days=1)
    days = checked(
        answers.day_range, agent.get("/api/v1/logins/", {"since": since, "until": until}), "day list"
    )
    # A day of zeros is a day without connections (agents list them; older ones leave them
    # out): nothing to fetch or store, as for a day not listed at all.
    reported = {
        row["date"]: row for row in days if since <= row["date"] <= until and any(row[f] for f in COUNT_NAMES)
    }
    stored = {
        row.day: row
        for row in HostDay.objects.filter(host=host, day__gte=since, day__lte=until).only(
            "pk", "day", *COUNT_NAMES
        )
    }
    unchanged = []
    for day, row in sorted(reported.items()):
        previous = stored.get(day)
        if previous is not None and all(getattr(previous, f) == row[f] for f in COUNT_NAMES):
            unchanged.append(previous.pk)  # and so are its sources
            continue
        # Sources first: the day's counts, read after them, can only have grown past them.
        sources = fetch_sources(agent, day)
        detail = fetch_day(agent, day)
        checked(answers.day_with_sources, detail, f"day {day}", sources)
        logins = fetch_logins(agent, day, detail["accepted"]) if row["accepted"] else []
        store_day(host, day, detail, sources, logins)
    if unchanged:
        HostDay.objects.filter(pk__in=unchanged).update(polled_at=timezone.now())
    # Days the agent no longer reports (its database was reset) are gone here too.
    gone = [day for day in stored if day not in reported]
    if gone:
        with counted(host):
            FleetAddress.objects.remove_host(host.pk, gone)  # and its sources
            HostDay.objects.filter(host=host, day__in=gone).delete()
            HostLogin.objects.filter(host=host, day__in=gone).delete()
    # Yesterday is polled again next round: for an agent in a zone behind ours it still grows.
    record_success(host, health, polled_through=today - timedelta(days=2))


def check_url(host: Host) -> None:
    """Before any request: raise Duplicate if an older entry polls the same URL (identity.py)."""
    spelled = normalised_url(host.url)
    if host.agent_url != spelled:  # written by update() or bulk_create(), which skip save()
        with one_writer():
            Host.objects.filter(pk=host.pk).update(agent_url=spelled)
    elif getattr(host, "older_at_url", None) is False:
        return  # read with the host's row (poll_host): no older entry at its URL
    first = identity.older_at_url(host)
    if first is not None:
        with one_writer(), transaction.atomic():
            identity.demote(host.pk, first, identity.url_reason(first))
        raise Duplicate(identity.url_reason(first))


def identify(host: Host, name: str | None) -> None:
    """Decide, under the name's lock, whether this entry counts the agent that reports `name`
    or another entry does (then raise Duplicate): identity.py says how."""
    if not name:
        # An agent that does not say its name (older ones) is known by its URL alone.
        if host.agent_host or host.duplicate_of_id is not None:
            with one_writer():
                Host.objects.filter(pk=host.pk).update(
                    agent_host="", agent_host_since=None, duplicate_of=None
                )
        return
    with one_writer(), transaction.atomic():
        first = identity.first_with_name(host, name)
        if first.pk != host.pk:
            identity.demote(host.pk, first, identity.name_reason(name, first))
    if first.pk != host.pk:
        raise Duplicate(identity.name_reason(name, first))


@contextlib.contextmanager
def counted(host: Host) -> Iterator[None]:
    """A write transaction in which this entry still counts its agent. Its first statement, a
    conditional UPDATE of the entry's row, waits for a decision that makes the entry a duplicate
    (which updates that row) or makes it wait, so what is written here is either kept or
    deleted by that decision, never left beside the other entry's counts."""
    with one_writer(), transaction.atomic():
        if not Host.objects.filter(pk=host.pk, duplicate_of__isnull=True).update(
            polling_since=F("polling_since")
        ):
            why = Host.objects.filter(pk=host.pk).values_list("last_error", flat=True).first()
            raise Duplicate(why or "Another entry counts this agent.")
        yield


def fetch_day(agent: Agent, day: date) -> dict:
    """The agent's day object: counts and its busiest user names (which the range lacks)."""
    row = checked(answers.day_detail, agent.get(f"/api/v1/logins/{day.isoformat()}/"), "day")
    if row["date"] != day:
        raise PollError(f"The agent answered for {row['date']} when asked for {day}.")
    return row


def fetch_sources(agent: Agent, day: date) -> list[dict]:
    """Every source of the day, page by page, deduplicated by address: at most
    ALPHA_POLL_MAX_SOURCES rows and ALPHA_POLL_MAX_BYTES of user names, so that one host's
    answers cannot grow the central database without bound."""
    limit = settings.ALPHA_POLL_MAX_SOURCES
    list_path = f"/api/v1/sources/{day.isoformat()}/"
    now = timezone.now()
    sources: dict[str, dict] = {}
    names_size = 0
    followed: set[str] = set()
    page = agent.get(list_path, {"page_size": MAX_PAGE_ROWS})
    # A page holds at least one row, so a list that keeps going past the row limit is refused
    # within limit + 1 pages; a link seen before is a loop, refused at once.
    while True:
        rows, next_link = checked(answers.source_page, page, f"source list of {day}", day, now)
        for row in rows:
            sources[row["ip"]] = row  # an agent listing an address twice keeps one row
            names_size += sum(map(len, row["users"]))
        if len(sources) > limit:
            raise PollError(
                f"The agent's source list for {day} has more than {limit:,} addresses (ALPHA_POLL_MAX_SOURCES)."
            )
        if names_size > settings.ALPHA_POLL_MAX_BYTES:
            raise PollError(
                f"The agent's source list for {day} holds more than {settings.ALPHA_POLL_MAX_BYTES:,} characters of user names."
            )
        if not next_link:
            return list(sources.values())
        if not rows:
            raise PollError(f"The agent's source list for {day} has an empty page before its end.")
        if next_link in followed:
            raise PollError(f"The agent's next link for {day} loops back to a page already read.")
        followed.add(next_link)
        path, params = agent.next_page(next_link, list_path)
        page = agent.get(path, params)


def fetch_logins(agent: Agent, day: date, accepted: int) -> list[dict]:
    """Every login of the day, page by page: no more than the day's `accepted` count (fetched
    after them, so never behind), which bounds what one host can store. An agent older than the
    logins endpoint (404) has none to give."""
    list_path = f"/api/v1/logins/{day.isoformat()}/accepted/"
    now = timezone.now()
    logins: list[dict] = []
    followed: set[str] = set()
    try:
        page = agent.get(list_path, {"page_size": MAX_PAGE_ROWS})
    except PollError as exc:
        if exc.status == 404:
            return []
        raise
    while True:
        rows, next_link = checked(answers.login_page, page, f"login list of {day}", day, now)
        logins += rows
        if len(logins) > accepted:
            raise PollError(f"The agent lists more logins for {day} than the {accepted} its day counts.")
        if not next_link:
            return logins
        if not rows:
            raise PollError(f"The agent's login list for {day} has an empty page before its end.")
        if next_link in followed:
            raise PollError(f"The agent's next link for {day}'s logins loops back to a page already read.")
        followed.add(next_link)
        path, params = agent.next_page(next_link, list_path)
        page = agent.get(path, params)


def store_day(host: Host, day: date, row: dict, sources: list[dict], logins: list[dict] = ()) -> None:
    """Replace the host's day: counts, sources and logins together, so a reader never sees half
    a day."""
    rows = HostSource.objects.db_rows(host.pk, day, sources)
    rollup = HostSource.objects.rollup_of(sources)
    login_rows = [HostLogin(host=host, day=day, **login) for login in logins]
    with counted(host):
        # update_or_create() would add a SELECT FOR UPDATE and two savepoints per day.
        counts = {**day_defaults(row), "stored_sources": len(sources)}
        if HostDay.objects.filter(host=host, day=day).update(**counts):
            before = HostSource.objects.rollup_rows(host.pk, day)
        else:  # a new day: it has no sources here yet (they are written and deleted with it)
            HostDay.objects.create(host=host, day=day, **counts)
            before = {}
        HostSource.objects.replace_day(host.pk, day, rows)
        changes = [(day, before.get(ip), rollup.get(ip)) for ip in before.keys() | rollup.keys()]
        FleetAddress.objects.change(host.pk, changes)
        HostLogin.objects.filter(host=host, day=day).delete()
        HostLogin.objects.bulk_create(login_rows, batch_size=500)


# SQLite lets one writer in at a time and puts the others to sleep in its busy handler (up to
# 100 ms between tries, the database idle meanwhile): this process's polling threads queue here
# instead and each goes in as soon as the previous one is done.
_sqlite_writer = threading.Lock()


@contextlib.contextmanager
def one_writer() -> Iterator[None]:
    if connections[DEFAULT_DB_ALIAS].vendor == "sqlite":
        with _sqlite_writer:
            yield
    else:
        yield


def day_defaults(row: dict) -> dict:
    return {
        **{f: row[f] for f in COUNT_NAMES},
        "top_users": row["top_users"],
        "polled_at": timezone.now(),
    }


def record_success(host: Host, health: dict, polled_through: date) -> None:
    now = timezone.now()
    status = {
        "last_poll_at": now,
        "last_success_at": now,
        "last_error": "",
        "consecutive_failures": 0,
        "agent_version": health["agent_version"],
        "unread_bytes": health["unread_bytes"],
        "malformed_lines": health["malformed_lines"],
        "unknown_last_24h": health["unknown_last_24h"],
        "last_event_at": health["last_event_at"],
        "polled_through": polled_through,
        "polling_since": None,  # released: the poll is over
    }
    if health.get("source_problem"):
        # Reachable, but with no log to read: not an ok host with zeros.
        status.update(state=NO_SOURCE, last_error=health["source_problem"][:300])
    else:
        # Reachable, but its agent is not following its log: the numbers are getting old.
        status["state"] = OK if health["following"] else STALE
    # The reported name is this entry's, counted, from the end of its first poll that said it.
    since = {"agent_host_since": Coalesce(F("agent_host_since"), Value(now))} if health.get("host") else {}
    # Only polling's own fields (an admin edit made while the poll ran must survive it), and only
    # while no other entry took the agent over during this poll (identity.py).
    if Host.objects.filter(pk=host.pk, duplicate_of__isnull=True).update(**status, **since):
        for name, value in status.items():
            setattr(host, name, value)
    else:
        host.refresh_from_db(fields=["state", "last_error"])


def record_failure(host: Host, error: str) -> None:
    now = timezone.now()
    failed = {"last_poll_at": now, "last_error": error[:300], "state": DOWN, "polling_since": None}
    # A duplicate stays one (its error says which entry counts its agent).
    if Host.objects.filter(pk=host.pk, duplicate_of__isnull=True).update(
        **failed, consecutive_failures=F("consecutive_failures") + 1
    ):
        host.consecutive_failures += 1
        for name, value in failed.items():
            setattr(host, name, value)
    else:
        Host.objects.filter(pk=host.pk).update(last_poll_at=now, polling_since=None)
        host.polling_since = None
        host.refresh_from_db(fields=["state", "last_error"])


def poll_round(host_ids: list[int] | None = None, deadline: Deadline | None = None) -> dict[str, int]:
    """Poll hosts concurrently in this process (no Celery), ending by `deadline` (default
    ALPHA_POLL_ROUND_TIMEOUT from now) whatever the hosts do. Returns hosts per resulting state.

    Hosts go in the order RoundQueue hands them out."""
    deadline = deadline or round_deadline()
    hosts = Host.objects.enabled() if host_ids is None else Host.objects.filter(pk__in=host_ids)
    rows = hosts.order_by(F("last_poll_at").asc(nulls_first=True), "pk").values_list(
        "pk", "consecutive_failures"
    )
    hosts = [(pk, failures > 0) for pk, failures in rows]
    states: dict[str, int] = {}
    with fewer_collections(), polling_threads(len(hosts)) as pool:
        queue = RoundQueue(hosts, thread_count(len(hosts)))

        def poll_next(_) -> str:
            with queue.next() as pk:
                return poll_guarded(pk, deadline)

        for state in pool.map(poll_next, range(len(hosts))):
            states[state or SKIPPED] = states.get(state or SKIPPED, 0) + 1
    close_old_connections()
    if states.get(NOT_REACHED):
        logger.warning("The polling round ended before %d host(s) were reached.", states[NOT_REACHED])
    return states


class RoundQueue:
    """A round's hosts, handed out one at a time as threads come free: those whose last poll
    failed first, but on no more than all the threads less RESERVED at once, then the others,
    each kind polled longest ago first (a host a short round did not reach is polled early in
    the next).

    A host that did not answer is likely to wait out its timeout again, the thread idle: started
    first, its wait overlaps the others' work. Ordered by last_poll_at alone, such hosts came
    last (a failed poll records its time at its end) and every round lasted its work plus a
    timeout; all at once, 100 silent hosts of 1,000 held every one of 64 threads for 3 s while
    the CPU idled. The threads kept back also mean that hosts which hung last time, however
    many, never stop the fleet's other hosts from being polled."""

    RESERVED = 8

    def __init__(self, hosts: Iterable[tuple[int, bool]], threads: int):
        self.failed: deque[int] = deque()
        self.others: deque[int] = deque()
        for pk, did_fail in hosts:
            (self.failed if did_fail else self.others).append(pk)
        self.most_failed = max(1, threads - self.RESERVED)
        self.failed_polling = 0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def next(self) -> Iterator[int]:
        """The next host's id, for the duration of its poll."""
        with self.lock:
            failed = bool(self.failed) and (self.failed_polling < self.most_failed or not self.others)
            pk = (self.failed if failed else self.others).popleft()
            self.failed_polling += failed
        try:
            yield pk
        finally:
            if failed:
                with self.lock:
                    self.failed_polling -= 1


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def poll_guarded(host_id: int, deadline: Deadline, poll=None) -> str:
    if deadline.expired():
        return STOPPED if deadline.stopped else NOT_REACHED
    # A connection left broken by the previous host of this thread is replaced, not reused.
    connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
    try:
        return (poll or poll_host)(host_id, deadline)
    except DATABASE_DOWN as exc:
        # A known condition (the round after it says so too), in one line, not a traceback.
        logger.warning("Polling host %s stopped, the database failed: %s", host_id, first_line(exc)[:200])
        return "error"
    except Exception:
        # One host's trouble (even the database refusing its status) never ends the round.
        logger.exception("Polling host %s failed", host_id)
        return "error"


def thread_count(jobs: int) -> int:
    return max(1, min(settings.ALPHA_POLL_CONCURRENCY, jobs))


@contextlib.contextmanager
def polling_threads(jobs: int) -> Iterator[ThreadPoolExecutor]:
    """ALPHA_POLL_CONCURRENCY threads, each keeping one database connection for all its hosts
    (a new PostgreSQL connection per host cost the database more CPU than the host's rows), all
    closed when the pool is done. Each poll closes its own HTTP connections (fetching.hang_up)."""
    adopted: list[BaseDatabaseWrapper] = []

    def adopt() -> None:
        wrapper = connections[DEFAULT_DB_ALIAS]
        wrapper.inc_thread_sharing()  # so that this thread may close it below
        adopted.append(wrapper)

    try:
        with ThreadPoolExecutor(max_workers=thread_count(jobs), initializer=adopt) as pool:
            yield pool
    finally:
        for wrapper in adopted:
            wrapper.close()
            wrapper.dec_thread_sharing()


def refresh_day(
    day: date, host_ids: list[int] | None = None, deadline: Deadline | None = None
) -> dict[int, str]:
    """Fetch one day's counts live from every enabled host at once (the fleet view's refresh),
    by `deadline` (default ALPHA_POLL_NOW_TIMEOUT from now). Each host is claimed as a poll
    claims it, and fails as a poll fails (its last_error says why). Returns {host id: error}
    for the hosts that could not be refreshed."""
    deadline = deadline or round_deadline(settings.ALPHA_POLL_NOW_TIMEOUT)
    hosts = Host.objects.enabled()
    if host_ids is not None:
        hosts = hosts.filter(pk__in=host_ids)
    errors: dict[int, str] = {}

    def refresh(host_id: int, within: Deadline) -> str:
        claimed = claim(host_id)
        if claimed is None:
            errors[host_id] = "Being polled right now: its stored counts are shown."
            return ""
        try:
            host = Host.objects.get(pk=host_id)
            first = identity.older_at_url(host)
            if host.duplicate_of_id is not None or first is not None:
                errors[host_id] = (
                    f"Not refreshed: {host.last_error if first is None else identity.url_reason(first)}"
                )
                return host.state
            with agent_errors(host):
                row = fetch_day(Agent.for_host(host, poll_budget(within)), day)
                with counted(host):
                    if (
                        not HostDay.objects.filter(host=host, day=day).update(**day_defaults(row))
                        and row["sessions"]
                    ):
                        HostDay.objects.create(host=host, day=day, **day_defaults(row))
                return host.state
            errors[host_id] = host.last_error or "Not refreshed."
            return host.state
        except Stopped:
            return STOPPED
        finally:
            hang_up()
            release(host_id, claimed)

    ids = list(hosts.values_list("pk", flat=True))
    if ids:
        with polling_threads(len(ids)) as pool:
            for host_id, state in zip(ids, pool.map(lambda pk: poll_guarded(pk, deadline, refresh), ids)):
                if state in (NOT_REACHED, STOPPED, "error"):
                    errors.setdefault(host_id, "Not refreshed: the refresh ran out of time.")
    return errors
