"""Serve the agent API (what the central server polls) with waitress."""

from __future__ import annotations

import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

# Why waitress and not gunicorn's sync workers: waitress reads every request whole in one event
# loop and hands only complete requests to its threads, so a client that sends its headers a
# byte at a time holds a connection, not a worker. Four such clients left two sync gunicorn
# workers answering nothing for 40 s, and the central server marked a healthy host down. The
# agent answers a handful of requests per poll; one process is plenty, and smaller.
SERVER = {
    "threads": 4,
    # Slow or idle clients each cost one connection, up to this many (poll() has no 1,024 cap).
    "connection_limit": 1000,
    "asyncore_use_poll": True,
    "channel_timeout": 30,
    # The API is GET only: nothing it reads is large.
    "max_request_header_size": 65536,
    "max_request_body_size": 65536,
    "ident": "alpha-agent",
}


class Command(BaseCommand):
    help = "Serve the agent API on ALPHA_AGENT_BIND (waitress; put TLS in front for other networks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--bind", default=None, help="HOST:PORT (default ALPHA_AGENT_BIND, 0.0.0.0:8001)."
        )

    def handle(self, *args, **options) -> None:
        from waitress import serve

        from alphaproject.wsgi import application

        bind = options["bind"] or settings.ALPHA_AGENT_BIND
        host, _, port = bind.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CommandError(f"The address to serve on must be HOST:PORT, not {bind!r} (ALPHA_AGENT_BIND).")
        self.stdout.write(f"Agent API on http://{bind}/api/v1/ (token: ALPHA_AGENT_TOKEN).")
        # SIGTERM (systemd, run-agent.sh) and Ctrl-C end it quietly.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        try:
            serve(application, listen=bind, **SERVER)
        except KeyboardInterrupt:
            return
        except OSError as exc:
            raise CommandError(
                f"Cannot serve on {bind} ({exc.strerror or exc}); set ALPHA_AGENT_BIND."
            ) from None
