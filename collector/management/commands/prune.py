"""Delete per-address and per-user detail older than ALPHA_RETAIN_DETAIL_DAYS; keep daily totals."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from collector.retention import cutoff, prune


class Command(BaseCommand):
    help = "Delete source and user detail older than ALPHA_RETAIN_DETAIL_DAYS (daily totals are kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Days of detail to keep (default ALPHA_RETAIN_DETAIL_DAYS).",
        )

    def handle(self, *args, **options) -> None:
        days = options["days"] if options["days"] is not None else settings.ALPHA_RETAIN_DETAIL_DAYS
        if days < 1:
            raise CommandError("--days must be at least 1.")
        today = timezone.localdate()
        deleted = prune(today, days)
        summary = ", ".join(f"{n:,} {what}" for what, n in deleted.items())
        self.stdout.write(f"Kept detail from {cutoff(today, days)} on; deleted {summary}.")
