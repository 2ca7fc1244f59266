"""Print the stored per-day SSH connection counts."""

from __future__ import annotations

import json
from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from collector.contract import COUNT_NAMES
from collector.counts import day_rows


def parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date like 2026-03-01, not {value!r}.") from None


class Command(BaseCommand):
    help = "Print the per-day SSH connection counts stored by watch_authlog."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="First day to show (YYYY-MM-DD).")
        parser.add_argument("--until", help="Last day to show (YYYY-MM-DD).")
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args, **options) -> None:
        since = parse_date(options["since"], "--since") if options["since"] else None
        until = parse_date(options["until"], "--until") if options["until"] else None
        if since and until and since > until:
            raise CommandError("--since must not be after --until.")
        days = day_rows(since, until)
        if options["json"]:
            self.stdout.write(json.dumps({"host": settings.ALPHA_HOST_NAME, "days": days}))
            return
        columns = ["date", *COUNT_NAMES]
        self.stdout.write("  ".join(columns))
        for row in days:
            self.stdout.write("  ".join(str(row[c]).rjust(len(c)) for c in columns))
