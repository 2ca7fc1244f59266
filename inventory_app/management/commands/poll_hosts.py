"""Poll every enabled host in this process: the same round Celery runs, without Redis."""

from __future__ import annotations

import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory_app.polling import poll_round


class Command(BaseCommand):
    help = "Poll every enabled host's agent and store its counts (in-process, no Celery needed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Poll one round, then exit.")
        parser.add_argument(
            "--interval", type=int, default=None, help="Seconds between rounds (default ALPHA_POLL_INTERVAL)."
        )

    def handle(self, *args, **options) -> None:
        interval = options["interval"] if options["interval"] is not None else settings.ALPHA_POLL_INTERVAL
        if interval < 1:
            raise CommandError("--interval must be at least 1 second.")
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while True:
            started = time.monotonic()
            states = poll_round()
            summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "no enabled hosts"
            self.stdout.write(f"Polled in {time.monotonic() - started:.1f} s: {summary}.")
            if options["once"]:
                return
            # Sleep in short steps so SIGTERM ends the loop promptly.
            while not stopping and time.monotonic() - started < interval:
                time.sleep(0.2)
            if stopping:
                return
