"""Polling agents: fetch each host's counts through its agent API and store them. Plain functions,
called by Celery tasks (tasks.py) and by `manage.py poll_hosts` alike.

Every agent is untrusted input: each request has connect and read timeouts and a size limit, and
every field is checked (answers.py) before anything is stored, so a slow, dead, lying or
malicious agent costs at most its timeout and an error on its own host.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import httpx
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q
from django.utils import timezone

from . import answers
from .models import DOWN, OK, STALE, Host, HostDay, HostSource

logger = logging.getLogger(__name__)

MAX_SOURCE_PAGES = 200

# A first round over 1,000 hosts allocates some ten million short-lived objects (parsed JSON,
# checked values: about twenty per source row), none in a reference cycle, so reference counting
# frees them. With Python's default threshold (700 allocations) the cyclic garbage collector ran
# thousands of times per round and took about 15 % of its CPU; rounds and Celery workers
# (alphaproject/celery.py) use this one instead.
GC_THRESHOLD = (50_000, 20, 100)


class PollError(Exception):
    """Why a poll failed, in one sentence for the host's last_error."""


def checked(check, data, what: str):
    """Run one of answers.py's checks, turning its complaint into the host's one-sentence error."""
    try:
        return check(data)
    except answers.InvalidAnswer as exc:
        raise PollError(f"The agent sent an invalid {what} ({str(exc)[:160]}).") from None


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class AgentConnection:
    host: Host
    client: httpx.Client

    @classmethod
    def open(cls, host: Host) -> AgentConnection:
        verify: bool | ssl.SSLContext = tls_context(host.ca_bundle) if host.verify_tls else False
        timeout = httpx.Timeout(settings.ALPHA_POLL_READ_TIMEOUT, connect=settings.ALPHA_POLL_CONNECT_TIMEOUT)
        client = httpx.Client(
            base_url=host.url.rstrip("/"),
            headers={"Authorization": f"Bearer {host.token}", "Accept": "application/json"},
            timeout=timeout,
            verify=verify,
            follow_redirects=False,
        )
        return cls(host, client)

    def close(self) -> None:
        self.client.close()

    @property
    def base_path(self) -> str:
        """The path part of the host's URL (an agent behind a proxy may live under a prefix)."""
        return httpx.URL(self.host.url).path.rstrip("/")

    def get(self, path: str, params: dict | None = None, read_timeout: float | None = None):
        """GET a JSON document, refusing answers over ALPHA_POLL_MAX_BYTES."""
        limit = settings.ALPHA_POLL_MAX_BYTES
        timeout = self.client.timeout
        if read_timeout is not None:
            timeout = httpx.Timeout(read_timeout, connect=settings.ALPHA_POLL_CONNECT_TIMEOUT)
        try:
            with self.client.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code != 200:
                    raise PollError(_status_sentence(response.status_code))
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise PollError(f"The agent's answer to {path} exceeded {limit:,} bytes.")
        except httpx.ConnectTimeout:
            raise PollError(f"Connecting to {self.host.url} timed out.") from None
        except httpx.TimeoutException:
            raise PollError(f"The agent at {self.host.url} did not answer in time.") from None
        except httpx.ConnectError as exc:
            raise PollError(f"Cannot connect to {self.host.url}: {_reason(exc)}.") from None
        except httpx.HTTPError as exc:
            raise PollError(f"HTTP error talking to {self.host.url}: {_reason(exc)}.") from None
        try:
            return json.loads(body)
        except ValueError:
            raise PollError(f"The agent's answer to {path} is not JSON.") from None


@functools.lru_cache(maxsize=32)
def tls_context(ca_bundle: str) -> ssl.SSLContext:
    # Building a context loads the CA bundle: ~30 ms, once per bundle instead of once per host.
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return ssl.create_default_context()


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:150]


def _status_sentence(code: int) -> str:
    if code == 401:
        return "The agent rejected the token (HTTP 401): check the host's token."
    if code == 503:
        return "The agent has no token configured (HTTP 503): set ALPHA_AGENT_TOKEN on the host."
    return f"The agent answered HTTP {code}."


# --- Polling ------------------------------------------------------------------------------------


def claim(host_id: int) -> bool:
    """Mark the host as being polled, unless another poll holds it: a conditional UPDATE, so
    overlapping rounds and workers on several machines never poll one host twice at once."""
    now = timezone.now()
    lease = timedelta(seconds=settings.ALPHA_POLL_LEASE)
    free = Q(polling_since__isnull=True) | Q(polling_since__lt=now - lease)
    return Host.objects.filter(pk=host_id).filter(free).update(polling_since=now) == 1


def release(host_id: int) -> None:
    Host.objects.filter(pk=host_id).update(polling_since=None)


def poll_host(host_id: int) -> str:
    """Poll one host if no other poll holds it. Returns its state afterwards ("" if skipped)."""
    if not claim(host_id):
        return ""
    try:
        host = Host.objects.get(pk=host_id)
        try:
            agent = AgentConnection.open(host)
        except (OSError, ssl.SSLError) as exc:  # an unreadable CA bundle
            record_failure(host, f"Cannot set up TLS for {host.url}: {_reason(exc)}.")
            return host.state
        try:
            fetch_and_store(host, agent)
        except PollError as exc:
            record_failure(host, str(exc))
        except Exception:
            logger.exception("Polling %s failed unexpectedly", host.name)
            record_failure(host, "Polling failed unexpectedly; see the central server's log.")
        finally:
            agent.close()
        return host.state
    finally:
        release(host_id)


def fetch_and_store(host: Host, agent: AgentConnection) -> None:
    health = checked(
        answers.health,
        agent.get("/api/v1/health/", read_timeout=settings.ALPHA_POLL_HEALTH_TIMEOUT),
        "health",
    )
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
    reported = {row["date"]: row for row in days if since <= row["date"] <= until}
    stored = {row.day: row for row in HostDay.objects.filter(host=host, day__gte=since, day__lte=until)}
    unchanged = []
    for day, row in sorted(reported.items()):
        previous = stored.get(day)
        if previous is not None and all(getattr(previous, f) == row[f] for f in answers.DAY_COUNTS):
            unchanged.append(previous.pk)  # and so are its sources
            continue
        detail = fetch_day(agent, day)
        store_day(host, day, detail, fetch_sources(agent, day))
    if unchanged:
        HostDay.objects.filter(pk__in=unchanged).update(polled_at=timezone.now())
    # Days the agent no longer reports (its database was reset) are gone here too.
    gone = [day for day in stored if day not in reported]
    if gone:
        HostDay.objects.filter(host=host, day__in=gone).delete()
        HostSource.objects.filter(host=host, day__in=gone).delete()
    # Yesterday is polled again next round: for an agent in a zone behind ours it still grows.
    record_success(host, health, polled_through=today - timedelta(days=2))


def fetch_day(agent: AgentConnection, day: date) -> dict:
    """The agent's day object: counts and its busiest user names (which the range lacks)."""
    row = checked(answers.day_detail, agent.get(f"/api/v1/logins/{day.isoformat()}/"), "day")
    if row["date"] != day:
        raise PollError(f"The agent answered for {row['date']} when asked for {day}.")
    return row


def fetch_sources(agent: AgentConnection, day: date) -> list[dict]:
    sources: list[dict] = []
    page = agent.get(f"/api/v1/sources/{day.isoformat()}/", {"page_size": 1000})
    for _ in range(MAX_SOURCE_PAGES):
        rows, next_link = checked(answers.source_page, page, f"source list of {day}")
        sources += rows
        if not next_link:
            return sources
        # Follow only the agent's own path (under the host URL's prefix, if any): a `next`
        # pointing elsewhere is not fetched.
        next_url = httpx.URL(next_link)
        path = next_url.path
        if agent.base_path and path.startswith(agent.base_path + "/"):
            path = path[len(agent.base_path) :]
        if not path.startswith(f"/api/v1/sources/{day.isoformat()}/"):
            raise PollError(f"The agent's next link for {day} leaves its source list.")
        page = agent.get(path, dict(next_url.params))
    raise PollError(f"The agent's source list for {day} has more than {MAX_SOURCE_PAGES} pages.")


def store_day(host: Host, day: date, row: dict, sources: list[dict]) -> None:
    """Replace the host's day: counts and sources together, so a reader never sees half a day."""
    seen: dict[str, dict] = {}
    for source in sources:
        seen[source["ip"]] = source  # an agent listing an address twice keeps one row
    rows = HostSource.objects.db_rows(host.pk, day, list(seen.values()))
    with one_writer(), transaction.atomic():
        # update_or_create() would add a SELECT FOR UPDATE and two savepoints per day.
        counts = day_defaults(row)
        if not HostDay.objects.filter(host=host, day=day).update(**counts):
            HostDay.objects.create(host=host, day=day, **counts)
        HostSource.objects.replace_day(host.pk, day, rows)


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
        **{f: row[f] for f in answers.DAY_COUNTS},
        "top_users": row["top_users"],
        "polled_at": timezone.now(),
    }


def record_success(host: Host, health: dict, polled_through: date) -> None:
    host.last_poll_at = host.last_success_at = timezone.now()
    host.last_error = ""
    host.consecutive_failures = 0
    host.agent_version = health["agent_version"]
    host.unread_bytes = health["unread_bytes"]
    host.malformed_lines = health["malformed_lines"]
    host.unknown_last_24h = health["unknown_last_24h"]
    host.last_event_at = health["last_event_at"]
    host.polled_through = polled_through
    # Reachable, but its agent is not following its log: the numbers are getting old.
    host.state = OK if health["following"] else STALE
    # Only polling's own fields: an admin edit made while the poll ran must survive it.
    host.save(
        update_fields=[
            "last_poll_at", "last_success_at", "last_error", "consecutive_failures", "agent_version",
            "unread_bytes", "malformed_lines", "unknown_last_24h", "last_event_at", "polled_through", "state",
        ]
    )  # fmt: skip


def record_failure(host: Host, error: str) -> None:
    host.last_poll_at = timezone.now()
    host.last_error = error[:300]
    host.consecutive_failures += 1
    host.state = DOWN
    host.save(update_fields=["last_poll_at", "last_error", "consecutive_failures", "state"])


def poll_round(host_ids: list[int] | None = None) -> dict[str, int]:
    """Poll hosts concurrently in this process (no Celery). Returns hosts per resulting state."""
    if host_ids is None:
        host_ids = list(Host.objects.enabled().values_list("pk", flat=True))
    states: dict[str, int] = {}
    with fewer_collections(), polling_threads(len(host_ids)) as pool:
        for state in pool.map(poll_guarded, host_ids):
            states[state or "skipped"] = states.get(state or "skipped", 0) + 1
    close_old_connections()
    return states


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def poll_guarded(host_id: int) -> str:
    # A connection left broken by the previous host of this thread is replaced, not reused.
    connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
    try:
        return poll_host(host_id)
    except Exception:
        # One host's trouble (even the database refusing its status) never ends the round.
        logger.exception("Polling host %s failed", host_id)
        return "error"


@contextlib.contextmanager
def polling_threads(jobs: int) -> Iterator[ThreadPoolExecutor]:
    """ALPHA_POLL_CONCURRENCY threads, each keeping one database connection for all its hosts
    (a new PostgreSQL connection per host cost the database more CPU than the host's rows), all
    closed when the pool is done."""
    adopted: list[BaseDatabaseWrapper] = []

    def adopt() -> None:
        wrapper = connections[DEFAULT_DB_ALIAS]
        wrapper.inc_thread_sharing()  # so that this thread may close it below
        adopted.append(wrapper)

    workers = max(1, min(settings.ALPHA_POLL_CONCURRENCY, jobs))
    try:
        with ThreadPoolExecutor(max_workers=workers, initializer=adopt) as pool:
            yield pool
    finally:
        for wrapper in adopted:
            wrapper.close()
            wrapper.dec_thread_sharing()


def refresh_day(day: date, host_ids: list[int] | None = None) -> dict[int, str]:
    """Fetch one day's counts live from every enabled host at once (the fleet view's refresh).
    Each host costs at most its timeouts; returns {host id: error} for the hosts that failed."""
    hosts = list(Host.objects.enabled().filter(pk__in=host_ids) if host_ids else Host.objects.enabled())
    errors: dict[int, str] = {}

    def run(host: Host) -> None:
        agent = AgentConnection.open(host)
        try:
            HostDay.objects.update_or_create(host=host, day=day, defaults=day_defaults(fetch_day(agent, day)))
        except PollError as exc:
            errors[host.pk] = str(exc)
        finally:
            agent.close()

    if hosts:
        with polling_threads(len(hosts)) as pool:
            list(pool.map(run, hosts))
    return errors
