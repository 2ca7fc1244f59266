"""Write a demo host's auth.log (the last days of a busy sshd), then keep it growing."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from collector.demo import DemoLog


class Command(BaseCommand):
    help = "Write a realistic demo auth.log with the last DAYS days, then append to it in real time."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", help="The log file to write (created; an existing one is only appended to)."
        )
        parser.add_argument(
            "--days", type=int, default=14, help="Days of history to write first (default 14)."
        )
        parser.add_argument("--once", action="store_true", help="Write the history, then exit.")
        parser.add_argument("--seed", type=int, default=7, help="Random seed (the same log every time).")

    def handle(self, *args, **options) -> None:
        path, days = options["path"], options["days"]
        if not 1 <= days <= 400:
            raise CommandError("--days must be from 1 to 400.")
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise CommandError(f"The folder of {path} does not exist.")
        demo = DemoLog(options["seed"])
        zone = _zone()
        now = lambda: datetime.now(zone)  # noqa: E731
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            with open(path, "w") as log:
                log.writelines(line + "\n" for line in demo.history(now(), days))
            self.stdout.write(f"Wrote {days} days of demo sshd lines to {path}.")
        if options["once"]:
            return
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for wait, lines in demo.live(now):
            deadline = time.monotonic() + wait
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.2)
            if stopping:
                return
            with open(path, "a") as log:
                log.writelines(line + "\n" for line in lines)


def _zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.TIME_ZONE)
