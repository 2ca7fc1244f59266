"""The agent's reading loop: files and the journal into the tracker, batches into the database."""

from __future__ import annotations

import glob
import grp
import os
import shlex
import shutil
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from . import journal
from .models import FILE, JOURNAL, AgentState, LogSource
from .parsing import MALFORMED, Parser
from .recording import Recorder
from .retention import prune
from .tailing import (
    COMMIT_SIZE,
    SourceError,
    decode_lines,
    describe_os_error,
    find_by_inode,
    find_copy,
    fingerprint_of,
    identify,
    open_log,
    read_chunks,
)

# Where journald keeps the system journal (persistent, then volatile).
JOURNAL_FOLDERS = ("/var/log/journal", "/run/log/journal")
PROGRESS_EVERY = 2.0  # seconds between progress lines on long reads
# How long a file rotated away is still read: syslog writes to it until logrotate's postrotate
# signal makes it reopen the log.
ROTATION_GRACE = 60.0
PRUNE_EVERY = 24 * 3600.0


class FollowedFile:
    """A path being followed across rotations: the open file and its LogSource row."""

    def __init__(self, path: str):
        self.path = path
        self.file = None
        self.compressed = False
        self.source: LogSource | None = None
        # Files rotated away, still read until their deadline (monotonic time).
        self.retired: list[tuple[FollowedFile, float]] = []


class Agent:
    def __init__(self, *, year: int | None = None, progress: Callable[[str], None] | None = None):
        self.zone = ZoneInfo(settings.TIME_ZONE)
        self.parser = Parser(self.zone, year=year)
        self.recorder = Recorder()
        self.progress = progress
        self.stopping = False
        self.lines_read = 0
        self.next_prune = 0.0  # monotonic time of the next daily prune (at once when following)
        # The LogSource id this run follows at each path (or "journal"), as health lists them.
        self.followed_ids: dict[str, int] = {}

    # -- files --

    def read_file(self, path: str, *, finished: bool = False) -> None:
        """Read a whole file once (backfill or --once) from where an earlier read stopped.

        A finished file (`finished`: archived or rotated, it will not grow again; a .gz; a file
        already rotated away) is read to its last byte, a last line without its newline too.
        Only the live log's last line may be half-written: it waits for the next read."""
        followed = FollowedFile(path)
        try:
            self._open(followed)
            self._finish_rotated(followed)
            finished = finished or followed.compressed or followed.source.finished
            self._drain(followed, final=finished)
            if not finished:
                self._follows(path, followed.source)
        finally:
            self.close(followed)

    def start_following(self, paths: list[str]) -> list[FollowedFile]:
        """Open the files to follow, finishing any that were rotated while the agent was stopped."""
        followers = [FollowedFile(path) for path in paths]
        for followed in followers:
            self._open(followed)
            self._finish_rotated(followed)
        return followers

    def follow(self, paths: list[str], stat_interval: float) -> None:
        """Follow files until SIGTERM/SIGINT: inotify wakes the loop, a periodic stat backs it up."""
        from inotify_simple import INotify
        from inotify_simple import flags as f

        followers = self.start_following(paths)
        inotify = INotify()
        mask = f.MODIFY | f.CREATE | f.MOVED_TO | f.MOVED_FROM | f.DELETE | f.CLOSE_WRITE | f.ATTRIB
        # Watch the directories, not the files, to see a new file appear under the same name.
        for directory in {os.path.dirname(os.path.abspath(fw.path)) for fw in followers}:
            inotify.add_watch(directory, mask)
        names = {os.path.basename(fw.path) for fw in followers}
        self._install_signal_handlers()
        try:
            for followed in followers:
                self.sync(followed)
            while not self.stopping:
                # Blocks without using CPU until a file changes, or the stat interval passes.
                events = inotify.read(timeout=int(stat_interval * 1000))
                if self.stopping:
                    break
                close_old_connections()
                if not events or any(ev.name in names for ev in events):
                    for followed in followers:
                        self.sync(followed)
                self.recorder.heartbeat()
                self.prune_daily()
        finally:
            inotify.close()
            for followed in followers:
                self.close(followed)

    def _follows(self, path: str, source: LogSource) -> None:
        """Record that this run follows `source` at `path`: health and metrics list only these,
        not a file rotated away from its path, nor a source an earlier run read (the journal,
        before the host had an auth.log). A run that only backfills finished files leaves the
        list as the follower left it."""
        if self.followed_ids.get(path) != source.pk:
            self.followed_ids[path] = source.pk
            AgentState.objects.filter(pk=1).update(followed=list(self.followed_ids.values()))

    def prune_daily(self) -> None:
        """Once a day while following: detail past ALPHA_RETAIN_DETAIL_DAYS goes (retention.py)."""
        if time.monotonic() < self.next_prune:
            return
        self.next_prune = time.monotonic() + PRUNE_EVERY
        prune(timezone.localdate(), settings.ALPHA_RETAIN_DETAIL_DAYS)

    def _install_signal_handlers(self) -> None:
        def stop(signum, frame):
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _open(self, followed: FollowedFile) -> None:
        followed.file, followed.compressed = open_log(followed.path)
        ident = identify(followed.file, followed.compressed)
        followed.source = self._source_for(followed.path, ident, followed.file)

    def close(self, followed: FollowedFile) -> None:
        """Stop following: files rotated away are read once more, to their end."""
        if followed.retired:
            self._drain_retired(followed, now=float("inf"))
        if followed.file is not None:
            followed.file.close()
            followed.file = None

    def _source_for(self, path: str, ident, f) -> LogSource:
        """The row of this file: same device and inode with the same first bytes, else the same
        first bytes under another name (rotated, compressed), else a new file."""
        if not ident.compressed:
            for source in LogSource.objects.filter(
                kind=FILE, device=ident.device, inode=ident.inode, finished=False
            ):
                if (
                    source.fingerprint_size
                    and fingerprint_of(f, source.fingerprint_size) == source.fingerprint
                ):
                    if source.path != path:
                        source.path = path
                    return source
        if ident.fingerprint_size == 1024:
            source = (
                LogSource.objects.filter(kind=FILE, fingerprint=ident.fingerprint, fingerprint_size=1024)
                .order_by("-offset")
                .first()
            )
            if source is not None:
                return source
        return LogSource(
            kind=FILE,
            path=path,
            device=None if ident.compressed else ident.device,
            inode=None if ident.compressed else ident.inode,
            fingerprint=ident.fingerprint,
            fingerprint_size=ident.fingerprint_size,
            size=ident.size,
        )

    def _finish_rotated(self, followed: FollowedFile) -> None:
        """If the file last read under this name was rotated while the agent was stopped, read
        the rest of it (it is usually `name.1` now) before the new file."""
        current = followed.source
        previous = (
            LogSource.objects.filter(kind=FILE, path=followed.path, finished=False)
            .exclude(pk=current.pk)
            .order_by("-last_read_at")
            .first()
        )
        if previous is None or previous.inode is None:
            return
        self._read_rest(previous, followed.path)
        previous.finished = True
        previous.save(update_fields=["finished", "path"])

    def _read_rest(self, source: LogSource, path: str) -> None:
        """Read a file rotated away from `path` to its last line, wherever logrotate put it:
        renamed (the same inode), or copied or compressed (the same first bytes). What it holds
        past our offset, a last line held back as half-written included, is read now or never."""
        live = os.path.abspath(path)
        for find in (
            lambda: find_by_inode(os.path.dirname(live), source.device, source.inode),
            lambda: find_copy(path, source.fingerprint, source.fingerprint_size),
        ):
            rotated_path = find()
            # copytruncate leaves the emptied file under the old inode: it holds nothing of ours.
            if rotated_path is None or os.path.abspath(rotated_path) == live:
                continue
            rotated = FollowedFile(rotated_path)
            try:
                rotated.file, rotated.compressed = open_log(rotated_path)
                if fingerprint_of(rotated.file, source.fingerprint_size) != source.fingerprint:
                    continue
                source.path = rotated_path
                rotated.source = source
                self._drain(rotated, final=True)
                return
            except SourceError:
                continue
            finally:
                self.close(rotated)

    def sync(self, followed: FollowedFile) -> None:
        """Read what is new at a followed path, handling rename and copytruncate rotation."""
        try:
            st = os.stat(followed.path)
        except FileNotFoundError:
            st = None  # renamed away, new file not created yet: keep reading the old one
        except OSError as exc:
            raise SourceError(describe_os_error(followed.path, exc)) from None
        self._drain_retired(followed)
        fst = os.fstat(followed.file.fileno())
        if st is not None and (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
            # Rename rotation: read the old file to its end, then follow the new one from its
            # start. syslog keeps writing to the old file until logrotate signals it, so the old
            # one stays open and is read again for ROTATION_GRACE seconds.
            old = FollowedFile(followed.path)
            old.file, old.source = followed.file, followed.source
            self._drain(old)
            followed.retired.append((old, time.monotonic() + ROTATION_GRACE))
            followed.file = None
            self._open(followed)
        elif self._truncated(followed, fst.st_size):
            # copytruncate: the file was copied elsewhere and emptied. The copy holds what was
            # written since our last read, and a last line we held back: read them there, then
            # start the file over.
            self._read_rest(followed.source, followed.path)
            followed.source.finished = True
            followed.source.save(update_fields=["finished", "path"])
            followed.file.seek(0)
            followed.source = self._source_for(followed.path, identify(followed.file, False), followed.file)
        self._drain(followed)
        self._follows(followed.path, followed.source)

    def _drain_retired(self, followed: FollowedFile, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        keep = []
        for old, deadline in followed.retired:
            done = now >= deadline
            self._drain(old, final=done)
            if done:
                old.source.finished = True
                old.source.save(update_fields=["finished"])
                self.close(old)
            else:
                keep.append((old, deadline))
        followed.retired = keep

    def _truncated(self, followed: FollowedFile, size: int) -> bool:
        source = followed.source
        if size < source.offset:
            return True
        # Emptied and written again past our offset: the first bytes changed.
        if source.offset and source.fingerprint_size:
            return fingerprint_of(followed.file, source.fingerprint_size) != source.fingerprint
        return False

    def _drain(self, followed: FollowedFile, *, final: bool = False) -> None:
        """Read complete lines to the end of the file, committing every COMMIT_SIZE and at its end."""
        source = followed.source
        started = time.monotonic()
        last_report = started
        lines_before = source.lines_read
        offset_before = source.offset
        if source.fingerprint_size < 1024:
            # The file was shorter than the fingerprint when first seen: widen it as it grows.
            ident = identify(followed.file, followed.compressed)
            if ident.fingerprint_size > source.fingerprint_size:
                source.fingerprint, source.fingerprint_size = (
                    ident.fingerprint,
                    ident.fingerprint_size,
                )
        self.parser.set_now(datetime.now(UTC))
        tracker = self.recorder.tracker
        committed = source.offset
        try:
            for chunk, offset in read_chunks(followed.file, source.offset, final=final):
                lines, malformed = decode_lines(chunk)
                tracker.feed_lines(self.parser, lines, malformed)
                source.offset = offset
                source.size = (
                    max(source.size, offset)
                    if followed.compressed
                    else os.fstat(followed.file.fileno()).st_size
                )
                source.lines_read += len(lines)
                self.lines_read += len(lines)
                source.malformed_lines += len(malformed)
                if offset - committed >= COMMIT_SIZE:
                    self.recorder.commit([source])
                    committed = offset
                now = time.monotonic()
                if self.progress and now - last_report >= PROGRESS_EVERY:
                    last_report = now
                    self._report(followed.path, source, lines_before, offset_before, started)
        except SourceError:
            # The lines read before the error are committed with their position, as each chunk
            # used to be: a caller that goes on (a rotated file it cannot finish) must not leave
            # their counts to the next commit, another source's, with this one's position behind.
            if source.offset != committed:
                self.recorder.commit([source])
            raise
        if self.progress and time.monotonic() - started >= PROGRESS_EVERY:
            self._report(followed.path, source, lines_before, offset_before, started)
        if source.offset != committed or source.pk is None:
            self.recorder.commit([source])

    def _report(
        self,
        path: str,
        source: LogSource,
        lines_before: int,
        offset_before: int,
        started: float,
    ) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        lines = source.lines_read - lines_before
        megabytes = (source.offset - offset_before) / 1e6
        self.progress(f"{path}: {lines:,} lines, {megabytes:,.1f} MB, {lines / elapsed:,.0f} lines/s")

    # -- journal --

    def read_journal(self, *, follow: bool, stat_interval: float) -> None:
        source, _ = LogSource.objects.get_or_create(
            kind=JOURNAL, path="journal", defaults={"fingerprint": ""}
        )
        self._follows("journal", source)
        if follow:
            self._install_signal_handlers()
        reader = journal.JournalReader(settings.ALPHA_JOURNALCTL, source.cursor or None, follow=follow)
        tracker = self.recorder.tracker
        try:
            if follow:
                self.recorder.heartbeat()  # following from now on, even if the journal stays quiet
            for batch in reader.batches(lambda: self.stopping, stat_interval):
                if follow:
                    self.prune_daily()
                if not (batch.entries or batch.unreadable or batch.cursor):
                    self.recorder.heartbeat()  # a quiet interval while following
                    continue
                self.parser.set_now(datetime.now(UTC))
                malformed = 0
                for entry in batch.entries:
                    event = self.parser.parse_journal(
                        entry.ts,
                        entry.host,
                        entry.program,
                        entry.pid,
                        entry.message,
                        entry.boot_id,
                    )
                    if event is MALFORMED:
                        malformed += 1
                        continue
                    malformed += entry.malformed
                    tracker.feed(event)
                source.cursor = batch.cursor or source.cursor
                source.lines_read += len(batch.entries)
                self.lines_read += len(batch.entries)
                source.malformed_lines += malformed + batch.unreadable
                self.recorder.commit([source])
                if follow:
                    close_old_connections()  # a long-running loop: drop connections past their age
        finally:
            reader.close()


def default_paths() -> list[str]:
    """The first of ALPHA_LOG_PATHS that exists (/var/log/auth.log on Debian and Ubuntu, else
    /var/log/secure on RHEL); [] means the journal."""
    for path in settings.ALPHA_LOG_PATHS:
        if os.path.exists(path):
            return [path]
    return []


def journal_problem(journalctl: str) -> str:
    """Why this user cannot follow sshd in the journal ("" if it can): no system journal files,
    or none it may read. journalctl itself says neither: it prints "No entries" and exits 0,
    which is how an agent used to follow an empty journal without a word."""
    try:
        words = shlex.split(journalctl)
    except ValueError:
        return f"ALPHA_JOURNALCTL is not a command line ({journalctl!r})"
    if not words or shutil.which(words[0]) is None:
        return f"{words[0] if words else 'journalctl'} was not found (install systemd's journalctl)"
    folders = [w.split("=", 1)[1] for w in words if w.startswith(("--directory=", "-D="))]
    folders += [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-D", "--directory")]
    if any(w.startswith(("--file", "--root", "--image", "-M", "--machine", "-m", "--merge")) for w in words):
        return ""  # a source we cannot check from here: trust the operator
    files: list[str] = []
    for folder in folders or JOURNAL_FOLDERS:
        files += glob.glob(os.path.join(folder, "*.journal")) + glob.glob(
            os.path.join(folder, "*", "*.journal")
        )
    system = [f for f in files if not os.path.basename(f).startswith("user-")] if not folders else files
    if not system:
        return f"no journal files were found ({', '.join(folders or JOURNAL_FOLDERS)})"
    if not any(os.access(f, os.R_OK) for f in system):
        group = grp_name(system[0])
        join = f" (sudo usermod -aG {group} $USER, then log in again)" if group and group != "root" else ""
        return f"the journal's files are not readable by this user: it needs group '{group or 'systemd-journal'}'{join}"
    return ""


def grp_name(path: str) -> str | None:
    try:
        return grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        return None
