"""One writer per agent database, enforced when watch_authlog starts.

Counting twice is the one thing the agent must never do, and two followers of one database
would: the generation check in recording.py stops the second one's first commit, but by then it
has read, and the first one dies on its next write. So the writer also holds a lock for as long
as it runs, and a second one refuses at once, naming the process that holds it: a lock file
beside a SQLite database (flock, released by the kernel if the process dies), a session
advisory lock on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from django.db import connection

# pg_try_advisory_lock's key: "alpha" + "w" (any fixed number; one database, one writer).
ADVISORY_KEY = 0x616C706877


class WriterLocked(Exception):
    """Another watch_authlog writes to this database (one sentence, for the command's error)."""


@contextlib.contextmanager
def writer_lock() -> Iterator[None]:
    if connection.vendor == "sqlite":
        with _file_lock(str(connection.settings_dict["NAME"])):
            yield
    elif connection.vendor == "postgresql":
        with _advisory_lock():
            yield
    else:
        yield


@contextlib.contextmanager
def _file_lock(database: str) -> Iterator[None]:
    path = f"{database}.writer"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            raise WriterLocked(
                f"Another watch_authlog (pid {holder}) is writing to {database}: stop it first, or give "
                "this one another DATABASE_URL."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _advisory_lock() -> Iterator[None]:
    # Its own connection: Django may close and reopen the agent's (CONN_MAX_AGE, health checks),
    # which would drop a session lock without a word.
    params = connection.get_connection_params()
    # What a second agent reads in pg_stat_activity to say who holds the database.
    params["application_name"] = f"alpha watch_authlog pid {os.getpid()}"
    raw = connection.get_new_connection(params)
    try:
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_KEY])
            if not cursor.fetchone()[0]:
                cursor.execute(
                    "SELECT a.application_name, a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() "
                    "AND l.classid = %s AND l.objid = %s LIMIT 1",
                    [ADVISORY_KEY >> 32, ADVISORY_KEY & 0xFFFFFFFF],
                )
                row = cursor.fetchone()
                name = row[0].removeprefix("alpha watch_authlog ") if row and row[0] else "unknown pid"
                holder = f"{name}, from {row[1] or 'a local socket'}" if row else "unknown"
                raise WriterLocked(
                    f"Another watch_authlog ({holder}) is writing to database "
                    f"{connection.settings_dict['NAME']}: stop it first, or give this one another DATABASE_URL."
                )
        yield
    finally:
        raw.close()
