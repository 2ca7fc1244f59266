"""Reading sshd's entries from the systemd journal through `journalctl -o json`. No Django.

The journal gives each entry its own time (__REALTIME_TIMESTAMP), PID and boot (_BOOT_ID), so no
header parsing or year guessing is needed; the cursor of the last entry is the read position.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .tailing import SourceError

IDENTIFIERS = ("sshd", "sshd-session", "sshd-auth")
BATCH_LINES = 20_000
# In follow mode, wait this long for more entries before committing what arrived.
BATCH_WAIT = 0.2


@dataclass
class Entry:
    ts: datetime
    host: str
    program: str
    pid: str | None
    message: str
    boot_id: str
    malformed: int = 0


@dataclass
class Batch:
    entries: list[Entry] = field(default_factory=list)
    cursor: str | None = None
    unreadable: int = 0


def journalctl_args(journalctl: str, cursor: str | None, follow: bool) -> list[str]:
    # ALPHA_JOURNALCTL is a command line: "journalctl --directory=/var/log/journal/remote" works.
    args = [*shlex.split(journalctl), "-o", "json", "--no-pager", "--quiet"]
    args += ["--after-cursor", cursor] if cursor else []
    args += ["--follow"] if follow else []
    # Matches on one field are ORed; "+" ORs the two groups (some units log under _COMM only).
    args += [f"SYSLOG_IDENTIFIER={name}" for name in IDENTIFIERS]
    args += ["+"] + [f"_COMM={name}" for name in IDENTIFIERS]
    return args


def parse_entry(line: bytes) -> tuple[Entry | None, str | None]:
    """(entry, cursor) from one JSON line of journalctl; (None, cursor) if unusable."""
    try:
        record = json.loads(line)
    except ValueError:
        return None, None
    if not isinstance(record, dict):
        return None, None
    cursor = record.get("__CURSOR")
    message = record.get("MESSAGE")
    malformed = 0
    if isinstance(message, list):  # journald stores non-UTF-8 messages as byte arrays
        try:
            message = bytes(message).decode("utf-8", errors="replace")
        except (TypeError, ValueError):
            return None, cursor
        malformed = 1
    if not isinstance(message, str):
        return None, cursor
    try:
        ts = datetime.fromtimestamp(int(record["__REALTIME_TIMESTAMP"]) / 1e6, tz=UTC)
    except (KeyError, ValueError, TypeError, OverflowError):
        return None, cursor
    program = record.get("SYSLOG_IDENTIFIER") or record.get("_COMM") or "sshd"
    pid = record.get("_PID") or record.get("SYSLOG_PID")
    entry = Entry(
        ts=ts,
        host=str(record.get("_HOSTNAME", "")),
        program=str(program),
        pid=str(pid) if pid is not None else None,
        message=message,
        boot_id=str(record.get("_BOOT_ID", "")),
        malformed=malformed,
    )
    return entry, cursor


class JournalReader:
    def __init__(self, journalctl: str, cursor: str | None, *, follow: bool):
        try:
            self.process = subprocess.Popen(
                journalctl_args(journalctl, cursor, follow),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Its own session: Ctrl-C in a terminal reaches the agent, which stops journalctl
                # itself (close()), rather than killing journalctl under it mid-read.
                start_new_session=True,
            )
        except FileNotFoundError:
            raise SourceError(
                f"{shlex.split(journalctl)[0]} was not found: install systemd's journalctl or give the log file's path."
            ) from None
        except PermissionError:
            raise SourceError(f"Cannot run {journalctl}: permission denied.") from None
        self.follow = follow

    def batches(self, stopping: Callable[[], bool], idle_timeout: float) -> Iterator[Batch]:
        """Batches of entries; in follow mode, one per burst, and an empty one after each quiet
        `idle_timeout`, until `stopping()` is true."""
        stdout = self.process.stdout
        assert stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(stdout, selectors.EVENT_READ)
        fd = stdout.fileno()
        os.set_blocking(fd, False)
        buffer = b""
        batch = Batch()
        eof = False
        while not eof and not stopping():
            wait = BATCH_WAIT if batch.entries or batch.unreadable else idle_timeout
            ready = selector.select(timeout=wait)
            if ready:
                data = os.read(fd, 1 << 20)
                if not data:
                    eof = True
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    entry, cursor = parse_entry(line)
                    if cursor:
                        batch.cursor = cursor
                    if entry is None:
                        batch.unreadable += 1
                    else:
                        batch.entries.append(entry)
                if len(batch.entries) < BATCH_LINES and not eof:
                    continue
            if batch.entries or batch.unreadable or batch.cursor:
                yield batch
                batch = Batch()
            elif not ready and self.follow:
                yield Batch()  # a quiet interval: the caller can say it is still following
        selector.close()
        if eof and not stopping():
            self._check_exit()

    def _check_exit(self) -> None:
        code = self.process.wait()
        if code != 0:
            stderr = (self.process.stderr.read() if self.process.stderr else b"").decode("utf-8", "replace")
            detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {code}"
            raise SourceError(
                f"journalctl failed ({detail}); the agent needs membership in group 'systemd-journal' or 'adm'."
            )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
