"""Import hosts from a CSV or YAML inventory: all of them or, if any entry is bad, none."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from inventory_app.inventory import COLUMNS, InventoryError, apply_inventory, read_inventory


class Command(BaseCommand):
    help = (
        f"Create or update the hosts of a .csv or .yaml inventory (fields {', '.join(COLUMNS)}); "
        "hosts not in the file are left alone, and importing the same file again changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file",
            help="CSV with a header row, or YAML list of mappings; relative token_file paths are "
            "relative to this file; tags separated by spaces or ';' (or a YAML list).",
        )

    def handle(self, *args, **options) -> None:
        path = Path(options["file"]).expanduser()
        try:
            entries = read_inventory(path)
        except InventoryError as exc:
            if len(exc.problems) == 1 and not str(exc).startswith(("line", "entry")):
                raise CommandError(f"{exc} Nothing was imported.") from None
            raise CommandError(f"Nothing was imported; fix {path} first:\n{exc}") from None
        try:
            result = apply_inventory(entries)
        except IntegrityError:
            # Only when another process creates one of these names between our read and write.
            raise CommandError(
                "Another process changed the same hosts meanwhile; nothing was imported, run again."
            ) from None
        self.stdout.write(f"Imported {path}: {result.summary()}.")
