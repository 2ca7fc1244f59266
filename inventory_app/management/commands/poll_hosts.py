"""Poll every enabled host in this process: the same round Celery runs, without Redis."""

from __future__ import annotations

import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from collector.agent import PRUNE_EVERY
from collector.retention import prune
from inventory_app.fetching import first_line
from inventory_app.polling import poll_round, round_deadline
from inventory_app.signals import poller_waiting, round_finished

# After the database failed (restarted, unreachable), seconds before trying again.
RETRY_SECONDS = 5
# Between rounds, seconds between two poller_waiting signals (alerting retries deliveries then).
WAITING_SIGNAL_SECONDS = 5


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
        self.stopping = False
        self.round = None
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        next_prune = 0.0
        while not self.stopping:
            started = time.monotonic()
            if not options["once"] and started >= next_prune:
                # What beat's daily "Prune old detail" does, for an installation without Celery.
                next_prune = started + PRUNE_EVERY
                self.prune()
            if not self.poll_once() and options["once"]:
                raise CommandError("The round could not run: the database is unreachable (see the log).")
            if options["once"]:
                return
            # Sleep in short steps so SIGTERM ends the loop promptly.
            signalled = time.monotonic()
            while not self.stopping and time.monotonic() - started < interval:
                time.sleep(0.2)
                if time.monotonic() - signalled >= WAITING_SIGNAL_SECONDS:
                    signalled = time.monotonic()
                    self.send_guarded(poller_waiting)

    def stop(self, signum, frame) -> None:
        # Ends the round at once: polls in flight are cut and record nothing.
        self.stopping = True
        if self.round is not None:
            self.round.stop()

    def poll_once(self) -> bool:
        """One round; False if the database failed it (logged in one line, tried again next)."""
        started = time.monotonic()
        self.round = round_deadline()
        try:
            states = poll_round(deadline=self.round)
        except DatabaseError as exc:
            self.stderr.write(f"Polling round skipped, the database failed: {first_line(exc)[:200]}")
            for connection in connections.all():
                connection.close()
            self.wait(RETRY_SECONDS)
            return False
        finally:
            self.round = None
            close_old_connections()
        summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "no enabled hosts"
        self.stdout.write(f"Polled in {time.monotonic() - started:.1f} s: {summary}.")
        self.send_guarded(round_finished)
        return True

    def send_guarded(self, signal) -> None:
        """Tell the apps that build on polling (alerting); their trouble never stops the poller."""
        for receiver, result in signal.send_robust(sender=self.__class__, stdout=self.stdout):
            if isinstance(result, Exception):
                self.stderr.write(
                    f"{getattr(receiver, '__name__', receiver)} failed after the round: {first_line(result)[:200]}"
                )
            close_old_connections()

    def prune(self) -> None:
        try:
            prune(timezone.localdate(), settings.ALPHA_RETAIN_DETAIL_DAYS)
        except DatabaseError as exc:
            self.stderr.write(f"Pruning skipped, the database failed: {str(exc).strip()[:200]}")

    def wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(0.2)
