"""Reading log files: complete lines from a byte offset, file identity, rotation. No Django.

A file is known by its identity (device, inode, and a fingerprint of its first bytes), not by
its name, so that a rotated, renamed or gzip-compressed file is recognised as one already read.
"""

from __future__ import annotations

import errno
import grp
import gzip
import hashlib
import os
import pwd
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .parsing import MAX_LINE_LENGTH

# Read at most this much at a time. On a 1M-line backlog, 2 MB chunks peaked at 83-85 MB of RSS
# against 100-108 MB with 4 MB, in the same time within the machine's noise (11.5-14.1 s against
# 11.7-15.1 s, SQLite).
CHUNK_SIZE = 2 * 1024 * 1024
# A backlog is committed every this much (and at its end): a commit costs some 8 ms whatever its
# size, and holding the counts of a few chunks costs little memory, unlike bigger chunks.
COMMIT_SIZE = 8 * 1024 * 1024
FINGERPRINT_SIZE = 1024
GZIP_MAGIC = b"\x1f\x8b"
# A "line" without a newline this long is cut and counted as malformed, so one endless line
# cannot hold the agent's memory or its position.
MAX_PENDING = 1024 * 1024


class SourceError(Exception):
    """A log source the agent cannot use; the message is one sentence for the user."""


@dataclass
class Identity:
    device: int
    inode: int
    fingerprint: str
    fingerprint_size: int
    size: int
    compressed: bool


def describe_os_error(path: str, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return f"{path} does not exist."
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"Cannot read {path}: permission denied; {_who_may_read(path)}."
    if exc.errno == errno.EISDIR:
        return f"{path} is a directory, not a log file."
    return f"Cannot read {path}: {exc.strerror}."


def _who_may_read(path: str) -> str:
    """What would let the agent read `path`: joining the file's group if that group may read it
    (and is not root, which nobody should join for this), else the file's owner or root."""
    try:
        st = os.stat(path)
    except OSError:
        return "the agent needs read access to it"
    group = _name(grp.getgrgid, st.st_gid)
    if st.st_mode & stat.S_IRGRP and group and group != "root":
        return f"the agent needs membership in group '{group}' (sudo usermod -aG {group} $USER, then log in again)"
    owner = _name(lambda uid: pwd.getpwuid(uid).pw_name, st.st_uid) or str(st.st_uid)
    return (
        f"only its owner '{owner}' may read it: run the agent as '{owner}' or as root, or make the file "
        "readable by a group of the agent's (Debian's rsyslog uses group adm, mode 640)"
    )


def _name(lookup, number: int) -> str | None:
    try:
        value = lookup(number)
    except (KeyError, OverflowError):
        return None
    return value if isinstance(value, str) else value.gr_name


def open_log(path: str) -> tuple[BinaryIO, bool]:
    """Open a log file for reading, transparently decompressing gzip. Returns (file, compressed)."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - handed to the caller
    except OSError as exc:
        raise SourceError(describe_os_error(path, exc)) from None
    if os.path.isdir(path):
        raw.close()
        raise SourceError(f"{path} is a directory, not a log file.")
    magic = raw.read(2)
    raw.seek(0)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), True  # type: ignore[return-value]
    return raw, False


def identify(f: BinaryIO, compressed: bool) -> Identity:
    """Identity of an open file. Reads its first bytes; leaves the position at 0."""
    fd = f.fileno()
    st = os.fstat(fd)
    f.seek(0)
    try:
        head = f.read(FINGERPRINT_SIZE)
    except (OSError, EOFError) as exc:  # a corrupt gzip file
        raise SourceError(f"Cannot read {getattr(f, 'name', 'file')}: {exc}.") from None
    f.seek(0)
    return Identity(
        device=st.st_dev,
        inode=st.st_ino,
        fingerprint=hashlib.sha256(head).hexdigest(),
        fingerprint_size=len(head),
        size=st.st_size,
        compressed=compressed,
    )


def fingerprint_of(f: BinaryIO, size: int) -> str:
    """sha256 of the first `size` bytes, to compare with a stored fingerprint."""
    position = f.tell()
    f.seek(0)
    head = f.read(size)
    f.seek(position)
    if len(head) < size:
        return ""
    return hashlib.sha256(head).hexdigest()


def read_chunks(f: BinaryIO, offset: int, *, final: bool = False) -> Iterator[tuple[bytes, int]]:
    """Yield (complete lines, offset after them) from `offset` to the end of the file.

    A last line without its newline is left for the next read (the writer may be mid-line),
    unless `final` says the file will not grow again (rotated away, or a backfill)."""
    try:
        f.seek(offset)
    except (OSError, EOFError) as exc:
        raise SourceError(f"Cannot read {getattr(f, 'name', 'file')}: {exc}.") from None
    pending = b""
    while True:
        try:
            data = f.read(CHUNK_SIZE)
        except (OSError, EOFError) as exc:  # truncated gzip: keep what was read
            if final and isinstance(exc, EOFError):
                break
            raise SourceError(f"Cannot read {getattr(f, 'name', 'file')}: {exc}.") from None
        if not data:
            break
        buf = pending + data if pending else data
        cut = buf.rfind(b"\n")
        if cut == -1:
            if len(buf) > MAX_PENDING:
                offset += len(buf)
                yield buf + b"\n", offset
                pending = b""
            else:
                pending = buf
            continue
        lines = buf[: cut + 1]
        pending = buf[cut + 1 :]
        offset += len(lines)
        yield lines, offset
    if final and pending:
        offset += len(pending)
        yield pending + b"\n", offset


def decode_lines(chunk: bytes) -> tuple[list[str], set[int]]:
    """Split a chunk of complete lines into text lines, with the indexes of malformed ones.

    A line with bytes that are not UTF-8, a NUL byte, or more than MAX_LINE_LENGTH characters is
    malformed: it is decoded with replacement characters and cut, never allowed to stop the read."""
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        lines = text.split("\n")
        lines.pop()  # the chunk ends with a newline
        if not lines or max(map(len, lines)) <= MAX_LINE_LENGTH:
            return lines, set()
    lines = []
    malformed = set()
    raw_lines = chunk.split(b"\n")
    raw_lines.pop()
    for raw in raw_lines:
        bad = False
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("utf-8", errors="replace")
            bad = True
        if "\x00" in line:
            line = line.replace("\x00", "\ufffd")
            bad = True
        if len(line) > MAX_LINE_LENGTH:
            line = line[:MAX_LINE_LENGTH]
            bad = True
        if bad:
            malformed.add(len(lines))
        lines.append(line)
    return lines, malformed


def find_by_inode(directory: str, device: int, inode: int) -> str | None:
    """The path of the file with this identity in `directory` (where a rotated log went)."""
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if entry.inode() == inode and entry.is_file() and entry.stat().st_dev == device:
                        return entry.path
                except OSError:
                    continue
    except OSError:
        return None
    return None


def find_copy(path: str, fingerprint: str, fingerprint_size: int) -> str | None:
    """A file beside `path`, named after it (auth.log.1, auth.log.1.gz, auth.log-20260302),
    that starts with the bytes a file read at `path` started with: where logrotate put that file
    when the rotated one has a new inode (copytruncate's copy, or a compressed file)."""
    if not fingerprint_size:
        return None
    directory, name = os.path.split(os.path.abspath(path))
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith(name) and n != name)
    except OSError:
        return None
    # Sorted, a plain file comes before its .gz, which may still be being written.
    for candidate in names:
        candidate = os.path.join(directory, candidate)
        try:
            f, _ = open_log(candidate)
        except SourceError:
            continue
        with f:
            try:
                if fingerprint_of(f, fingerprint_size) == fingerprint:
                    return candidate
            except (OSError, EOFError):  # a corrupt or half-written gzip file
                continue
    return None
