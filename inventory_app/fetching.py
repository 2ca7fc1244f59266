"""Fetching JSON from an agent over HTTP, within a byte limit and a deadline.

An agent may belong to an attacker: it can answer anything, as slowly as it likes. Connect and
read timeouts only bound each socket operation, so an answer trickled one byte a second would
never time out; here every request also has a total deadline, enforced by one watchdog thread
that shuts down the sockets of a request past it (the blocked read then returns at once). A
deadline has a parent (a request's is its poll's budget, a poll's is its round's end), so a
round that is stopped or out of time cuts every request it has in flight.

Answers are read raw, never decompressed (we ask for `identity` and refuse any other
Content-Encoding), so memory per request is bounded by ALPHA_POLL_MAX_BYTES.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.utils import requote_uri
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

CHUNK = 64 * 1024


class PollError(Exception):
    """Why a poll failed, in one sentence for the host's last_error (and the HTTP status of an
    answer that was an error, if it was)."""

    def __init__(self, sentence: str, status: int | None = None):
        super().__init__(sentence)
        self.status = status


class Stopped(Exception):
    """The round was stopped (SIGTERM): the poll ends without recording anything."""


# --- Deadlines ----------------------------------------------------------------------------------


class Deadline:
    """A point in time (monotonic) by which something must end, and why, for the error. The
    earliest of it and its parents' applies; stop() makes it (and its children) due now."""

    def __init__(self, seconds: float, why: str, parent: Deadline | None = None):
        self.at = time.monotonic() + seconds
        self.seconds = seconds
        self.why = why
        self.parent = parent
        self.stopped = False

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        return min(left, self.parent.remaining()) if self.parent else left

    def expired(self) -> Deadline | None:
        """The outermost deadline that has passed (the round before the poll before the
        request: the error names the widest cause), or None."""
        outer = self.parent.expired() if self.parent else None
        if outer is not None:
            return outer
        return self if self.stopped or time.monotonic() >= self.at else None

    def stop(self) -> None:
        self.stopped = True
        self.at = time.monotonic()


class Watchdog:
    """One thread for the whole process: every 50 ms it shuts down the sockets of requests
    whose deadline passed. The sockets are duplicates (os.dup) owned here, so a socket the
    request closed meanwhile can never be confused with a new one that got its number."""

    TICK = 0.05

    def __init__(self):
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[Deadline, list[socket.socket]]] = {}
        self._thread: threading.Thread | None = None

    def begin(self, deadline: Deadline) -> None:
        with self._lock:
            self._watched[threading.get_ident()] = (deadline, [])
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="alpha-watchdog", daemon=True)
                self._thread.start()

    def watch(self, sock: socket.socket) -> None:
        """Called from the connection of the current thread's request (see WatchedConnection)."""
        with self._lock:
            entry = self._watched.get(threading.get_ident())
            if entry is None:
                return
            copy = socket.socket(fileno=os.dup(sock.fileno()))
            entry[1].append(copy)
            if entry[0].expired():
                _cut(copy)

    def end(self) -> None:
        with self._lock:
            _, socks = self._watched.pop(threading.get_ident(), (None, []))
        for sock in socks:
            sock.close()

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            with self._lock:
                for deadline, socks in self._watched.values():
                    if socks and deadline.expired():
                        for sock in socks:
                            _cut(sock)


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed, or never connected
        sock.shutdown(socket.SHUT_RDWR)


watchdog = Watchdog()


class WatchedConnection(HTTPConnection):
    """Hands its socket to the watchdog, for the deadline of the request using it."""

    def _new_conn(self) -> socket.socket:
        # Before the TLS handshake, which a hostile server can trickle too.
        sock = super()._new_conn()
        watchdog.watch(sock)
        return sock

    def getresponse(self, *args, **kwargs):
        if self.sock is not None:  # a kept-alive connection, opened for an earlier request
            watchdog.watch(self.sock)
        return super().getresponse(*args, **kwargs)


class WatchedHTTPSConnection(WatchedConnection, HTTPSConnection):
    pass


class WatchedPool(HTTPConnectionPool):
    ConnectionCls = WatchedConnection


class WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


class AgentAdapter(HTTPAdapter):
    """requests' adapter with watched connections, and one TLS context per CA bundle."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": WatchedPool, "https": WatchedHTTPSPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if verify is not False:
            # Loading a CA bundle costs ~30 ms: once per bundle, not once per host.
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = tls_context(verify if isinstance(verify, str) else "")
        return host_params, pool_kwargs


@functools.lru_cache(maxsize=32)
def tls_context(ca_bundle: str) -> ssl.SSLContext:
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return ssl.create_default_context()


_local = threading.local()


@functools.lru_cache(maxsize=1)
def unverified_context() -> ssl.SSLContext:
    """For a host with verify_tls off: encrypted, but any certificate goes."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class AgentConnection(http.client.HTTPConnection):
    """One kept-alive connection to an agent (http.client: a third of the CPU per request that
    requests and urllib3 took, with the same parser underneath). Its socket is handed to the
    watchdog before the TLS handshake, which a hostile server can trickle too."""

    def __init__(self, host: str, port: int, connect_timeout: float, context: ssl.SSLContext | None):
        super().__init__(host, port, timeout=connect_timeout)
        self.context = context
        if context is not None:
            self.default_port = 443  # the Host header names the port only if it is not the default

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            watchdog.watch(sock)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def dropped(self) -> bool:
        """Whether a kept-alive connection was closed by the agent meanwhile (or sent something
        unasked): then a new one is opened, as urllib3 does."""
        if self.sock is None:
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


def hang_up() -> None:
    """Close this thread's connections to the agent of the poll that ended."""
    conns = getattr(_local, "connections", None)
    if conns:
        for conn in conns.values():
            conn.close()
        conns.clear()


def _connection(key: tuple, connect_timeout: float, context: ssl.SSLContext | None) -> AgentConnection:
    conns = getattr(_local, "connections", None)
    if conns is None:
        conns = _local.connections = {}
    conn = conns.get(key)
    if conn is not None and conn.sock is not None and conn.dropped():
        conn.close()
    if conn is None:
        conn = conns[key] = AgentConnection(key[1], key[2], connect_timeout, context)
    conn.timeout = connect_timeout
    return conn


def _drop(key: tuple) -> None:
    conns = getattr(_local, "connections", None)
    conn = conns.pop(key, None) if conns else None
    if conn is not None:
        conn.close()


# --- One agent ----------------------------------------------------------------------------------


@dataclass
class Agent:
    """One host's agent API: its base URL, token and TLS settings, and the deadline (the poll's
    budget) that every request to it must also meet."""

    url: str
    token: str
    verify: bool | str
    deadline: Deadline

    @classmethod
    def for_host(cls, host, deadline: Deadline) -> Agent:
        verify: bool | str = (host.ca_bundle or True) if host.verify_tls else False
        if isinstance(verify, str):
            try:
                tls_context(verify)
            except (OSError, ssl.SSLError) as exc:
                raise PollError(f"Cannot set up TLS for {host.url}: {reason(exc)}.") from None
        return cls(host.url.rstrip("/"), host.token, verify, deadline)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.scheme = parts.scheme.lower()
        if self.scheme not in ("http", "https"):
            raise PollError(f"Cannot connect to {self.url}: not an http(s) URL.")
        try:
            port = parts.port
        except ValueError:
            raise PollError(f"Cannot connect to {self.url}: invalid port.") from None
        self.hostname = parts.hostname or ""
        self.port = port or (443 if self.scheme == "https" else 80)
        # The path part of the host's URL (an agent behind a proxy may live under a prefix).
        self.base_path = parts.path.rstrip("/")
        self.quoted_base = requote_uri(self.base_path)
        self.headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": "alpha-poller",
        }

    def get(self, path: str, params: dict | None = None, read_timeout: float | None = None):
        """GET a JSON document: at most ALPHA_POLL_MAX_BYTES, within ALPHA_POLL_REQUEST_TIMEOUT
        and the poll's deadline."""
        request = Deadline(settings.ALPHA_POLL_REQUEST_TIMEOUT, "request", parent=self.deadline)
        self.check(request)
        with watched(request):
            body = self._get(path, params, read_timeout, request)
        self.check(request)
        try:
            return json.loads(body)
        except RecursionError:
            raise PollError(f"The agent's answer to {path} is nested too deeply.") from None
        except ValueError:
            raise PollError(f"The agent's answer to {path} is not JSON.") from None

    def _context(self) -> ssl.SSLContext | None:
        if self.scheme != "https":
            return None
        if self.verify is False:
            return unverified_context()
        return tls_context(self.verify if isinstance(self.verify, str) else "")

    def _get(self, path: str, params, read_timeout, request: Deadline) -> bytearray:
        limit = settings.ALPHA_POLL_MAX_BYTES
        left = max(request.remaining(), 0.001)
        connect_timeout = min(settings.ALPHA_POLL_CONNECT_TIMEOUT, left)
        read_timeout = min(read_timeout or settings.ALPHA_POLL_READ_TIMEOUT, left)
        target = self.quoted_base + requote_uri(path)
        if params:
            target += "?" + urlencode({k: str(v) for k, v in params.items()})
        key = (self.scheme, self.hostname, self.port, self.verify)
        conn = _connection(key, connect_timeout, self._context())
        try:
            if conn.sock is None:
                try:
                    conn.connect()
                except TimeoutError:
                    raise PollError(f"Connecting to {self.url} timed out.") from None
                except (ssl.SSLError, ssl.CertificateError) as exc:
                    raise PollError(f"TLS error talking to {self.url}: {reason(exc)}.") from None
                except OSError as exc:
                    raise PollError(f"Cannot connect to {self.url}: {reason(exc)}.") from None
            else:  # a kept-alive connection, opened for an earlier request
                watchdog.watch(conn.sock)
            conn.sock.settimeout(read_timeout)
            try:
                conn.request("GET", target, headers=self.headers)
                response = conn.getresponse()
                return self._body(response, path, limit, request)
            except TimeoutError:
                raise PollError(f"The agent at {self.url} did not answer in time.") from None
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raise PollError(f"TLS error talking to {self.url}: {reason(exc)}.") from None
            except (http.client.HTTPException, OSError, ValueError) as exc:
                raise PollError(f"HTTP error talking to {self.url}: {reason(exc)}.") from None
        except BaseException:
            _drop(key)  # half-read or refused: never reused
            self.check(request)  # cut by the watchdog: say why
            raise

    def _body(
        self, response: http.client.HTTPResponse, path: str, limit: int, request: Deadline
    ) -> bytearray:
        if response.status != 200:
            raise PollError(status_sentence(response.status), response.status)
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("", "identity"):
            # Decompressing is how 2 MB becomes 2 GB: the agent was asked for identity.
            raise PollError(
                f"The agent's answer to {path} is compressed ({encoding[:20]}), which was not asked for."
            )
        length = response.getheader("Content-Length") or ""
        if length.isdigit() and int(length) > limit:
            raise PollError(f"The agent's answer to {path} exceeded {limit:,} bytes.")
        body = bytearray()
        while True:
            chunk = response.read(CHUNK)
            if not chunk:
                break
            body += chunk
            if len(body) > limit:
                raise PollError(f"The agent's answer to {path} exceeded {limit:,} bytes.")
            self.check(request)
        return body

    def check(self, request: Deadline) -> None:
        """Raise the sentence for the deadline that passed, if one did."""
        expired = request.expired()
        if expired is None:
            return
        if expired.stopped:
            raise Stopped()
        if expired.why == "request":
            raise PollError(
                f"The agent at {self.url} did not finish an answer within {expired.seconds:g} s "
                "(ALPHA_POLL_REQUEST_TIMEOUT)."
            )
        raise PollError(expired.why)

    def next_page(self, link: str, list_path: str) -> tuple[str, dict]:
        """The path and parameters of a `next` link, if it stays on this agent's `list_path`
        (under the host URL's prefix, if any); compared decoded and normalised, so %2e%2e or a
        doubled slash cannot climb out of it. The link's scheme and address are ignored: the
        page is fetched from the host's own URL."""
        parts = urlsplit(link)
        path = unquote(parts.path)
        if self.base_path and path.startswith(self.base_path + "/"):
            path = path[len(self.base_path) :]
        if path != list_path:
            raise PollError("The agent's next link leaves its source list.")
        # Only the paging parameters: a link cannot add others (format=, say).
        params = {k: v for k, v in parse_qsl(parts.query) if k in ("cursor", "page_size")}
        return list_path, params


@contextlib.contextmanager
def watched(deadline: Deadline) -> Iterator[None]:
    watchdog.begin(deadline)
    try:
        yield
    finally:
        watchdog.end()


def reason(exc: BaseException) -> str:
    """The innermost cause, in a few words: 'Connection refused', not urllib3's retry story."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None) or exc.__cause__ or exc.__context__
        if isinstance(inner, BaseException):
            exc = inner
            continue
        if exc.args and isinstance(exc.args[0], BaseException):
            exc = exc.args[0]
            continue
        break
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    elif isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None):
        text = str(exc.reason).replace("_", " ").lower()
    else:
        text = first_line(exc)
        # urllib3 prefixes its messages with the connection object's repr.
        if ">: " in text:
            text = text.split(">: ", 1)[1]
    return text[:150]


def status_sentence(code: int) -> str:
    if code == 401:
        return "The agent rejected the token (HTTP 401): check the host's token."
    if code == 400:
        return "The agent answered HTTP 400: add the name in the host's URL to the agent's ALLOWED_HOSTS."
    if code == 503:
        return "The agent has no token configured (HTTP 503): set ALPHA_AGENT_TOKEN on the host."
    return f"The agent answered HTTP {code}."


def first_line(exc: BaseException) -> str:
    """An exception's message in one line (its first), or its type's name if it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
