"""Print what the agent sees in a log file, one JSON object per sshd event; writes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from collector.parsing import MALFORMED, Parser
from collector.sessions import Tracker
from collector.tailing import SourceError, decode_lines, open_log, read_chunks


class Command(BaseCommand):
    help = "Print each sshd event found in a log file as one JSON object per line (stores nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="The log file to read (.gz accepted).")
        parser.add_argument("--year", type=int, help="Year of classic syslog lines (which carry none).")

    def handle(self, *args, **options) -> None:
        year = options["year"]
        if year is not None and not 1970 <= year <= 9999:
            raise CommandError(f"--year must be a year between 1970 and 9999, not {year}.")
        parser = Parser(ZoneInfo(settings.TIME_ZONE), now=datetime.now(UTC), year=year)
        # The tracker resolves "last message repeated N times" to the event it repeats.
        tracker = Tracker()
        number = 0
        try:
            f, _ = open_log(options["path"])
            with f:
                for chunk, _ in read_chunks(f, 0, final=True):
                    lines, _ = decode_lines(chunk)
                    for line in lines:
                        number += 1
                        event = parser.parse_line(line)
                        if event is None or event is MALFORMED:
                            continue
                        event = tracker.feed(event)
                        if event is None:
                            continue
                        self.stdout.write(json.dumps({"line": number, **event.as_dict()}, ensure_ascii=False))
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        except BrokenPipeError:
            pass
