"""Follow sshd's log and keep per-day connection counts in the local database."""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from collector.agent import Agent, default_paths, journal_problem
from collector.locking import WriterLocked, writer_lock
from collector.models import AgentState
from collector.recording import ConcurrentWriter
from collector.tailing import SourceError, open_log


class Command(BaseCommand):
    help = "Follow sshd's log (auth.log, secure or the journal) and count SSH connections per day."
    # Django's system checks validate code, which CI checks, not the host: running them loaded
    # every template tag library (DRF's among them) into the agent, 26 MB of its peak memory
    # and 0.4 s of its start-up. Settings are still validated where they are read (settings.py).
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "paths", nargs="*", metavar="PATH",
            help="Log files to read, oldest first (.gz accepted). Default: /var/log/auth.log, "
            "else /var/log/secure, else the systemd journal. With --once, each but the live log "
            "(ALPHA_LOG_PATHS) is read as finished, to its last line.",
        )  # fmt: skip
        parser.add_argument("--once", action="store_true", help="Read what is new, then exit.")
        parser.add_argument(
            "--year",
            type=int,
            help="Year of classic syslog lines (which carry none), for backfills.",
        )
        parser.add_argument(
            "--journal",
            action="store_true",
            help="Read the systemd journal (journalctl).",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Say in one line which log would be followed (or why none can be), then exit.",
        )

    def handle(self, *args, **options) -> None:
        year = options["year"]
        if year is not None and not 1970 <= year <= 9999:
            raise CommandError(f"--year must be a year between 1970 and 9999, not {year}.")
        paths = options["paths"]
        if paths and options["journal"]:
            raise CommandError("Give log file paths or --journal, not both.")
        if not paths and not options["journal"]:
            paths = default_paths()
        progress = (lambda text: self.stderr.write(text)) if options["once"] else None
        started = time.monotonic()
        try:
            for path in paths:
                # Say what is wrong with a path before touching the database.
                open_log(path)[0].close()
            problem = "" if paths else journal_problem(settings.ALPHA_JOURNALCTL)
            if problem:
                looked = " and ".join(settings.ALPHA_LOG_PATHS) or "no log file"
                sentence = f"No sshd log to follow: {looked} do not exist, and {problem}."
                record_source_problem(sentence)
                raise CommandError(f"{sentence} Give a log file's path: watch_authlog /path/to/auth.log.")
            what = ", ".join(paths) if paths else f"the systemd journal ({settings.ALPHA_JOURNALCTL})"
            if options["check"]:
                record_source_problem("")
                self.stdout.write(f"The agent follows {what}.")
                return
            with writer_lock():
                record_source_problem("")
                agent = Agent(year=year, progress=progress)
                if not options["once"]:
                    self.stderr.write(f"Following {what}.")
                if not paths:
                    agent.read_journal(follow=not options["once"], stat_interval=settings.ALPHA_STAT_INTERVAL)
                elif options["once"]:
                    live = {os.path.realpath(p) for p in settings.ALPHA_LOG_PATHS}
                    for path in paths:
                        # Only the live log may end in a line syslog is still writing; any other
                        # file is an archived or rotated one, finished to its last byte.
                        agent.read_file(path, finished=os.path.realpath(path) not in live)
                else:
                    agent.follow(paths, stat_interval=settings.ALPHA_STAT_INTERVAL)
        except (SourceError, ConcurrentWriter, WriterLocked) as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if disk_full(exc):
                # Nothing is lost: the batch that did not fit was not committed, and the next
                # start reads from the last committed offset.
                raise CommandError(
                    f"The disk holding the database is full ({detail[:120]}); free some space and start "
                    "the agent again: it resumes where it last committed."
                ) from None
            raise CommandError(
                f"The database failed ({detail}); check DATABASE_URL and run 'python manage.py migrate'."
            ) from None
        if options["once"]:
            recorder = agent.recorder
            days = ", ".join(sorted(recorder.days_touched)) or "none"
            self.stdout.write(
                f"Read {agent.lines_read:,} lines: {recorder.connections_added:,} connections, days touched: "
                f"{days}; {time.monotonic() - started:.1f} s."
            )


def record_source_problem(sentence: str) -> None:
    """Tell the agent API's health why there is nothing to follow (or that there is again)."""
    AgentState.objects.update_or_create(pk=1, defaults={"source_problem": sentence})


def disk_full(exc: DatabaseError) -> bool:
    """SQLite's "database or disk is full", PostgreSQL's DiskFull (SQLSTATE 53100), or ENOSPC."""
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == "53100":
        return True
    text = f"{exc} {cause}".lower()
    return "disk is full" in text or "no space left on device" in text
