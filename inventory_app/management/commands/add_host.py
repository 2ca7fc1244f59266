"""Add a host to the inventory, or update it by name: for scripts and provisioning tools."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from inventory_app.inventory import model_problem, parse_tags, read_token_file, sentence, stored_tags
from inventory_app.models import Host


class Command(BaseCommand):
    help = (
        "Add a host, or update the one with this name. Options not given take their defaults, "
        "except --tags: without it an existing host keeps its tags."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The host's name, e.g. web1.")
        parser.add_argument("url", help="The agent's base URL, e.g. https://web1.example.com:8001.")
        parser.add_argument(
            "--token-file", required=True, help="File holding the agent's token (kept off the command line)."
        )
        parser.add_argument("--tags", default=None, help="Tags separated by commas, ';' or spaces.")
        parser.add_argument(
            "--no-verify-tls", action="store_true", help="Do not check the agent's TLS certificate."
        )
        parser.add_argument("--ca-bundle", default="", help="CA bundle that signed the agent's certificate.")
        parser.add_argument("--disabled", action="store_true", help="Keep the host but do not poll it.")
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="Only add the host: an existing one is left exactly as it is (run-system.sh, re-runs).",
        )

    def handle(self, *args, **options) -> None:
        try:
            token = read_token_file(Path(options["token_file"]).expanduser())
            tags = parse_tags(options["tags"]) if options["tags"] is not None else None
        except ValueError as exc:
            raise CommandError(sentence(str(exc))) from None
        ca_bundle = options["ca_bundle"]
        if ca_bundle:
            # Absolute, because the poller runs from another directory than this command.
            ca_bundle = str(Path(ca_bundle).expanduser().resolve())
            if not Path(ca_bundle).is_file():
                raise CommandError(f"The CA bundle {ca_bundle} is not a file.")

        host = Host.objects.filter(name=options["name"]).first() or Host(name=options["name"])
        created = host.pk is None
        if not created and options["if_missing"]:
            # Admin edits (tags, enabled, even the URL) are the inventory's, not this script's.
            self.stdout.write(f"Host {host.name} exists, left as it is.")
            return
        before = (host.url, host.token, host.tags, host.verify_tls, host.ca_bundle, host.enabled)
        host.url = options["url"]
        host.token = token
        if tags is not None:
            host.tags = stored_tags(tags)
        host.verify_tls = not options["no_verify_tls"]
        host.ca_bundle = ca_bundle
        host.enabled = not options["disabled"]
        problem = model_problem(host)
        if problem:
            raise CommandError(f"Cannot save host {host.name!r}: {problem}")

        after = (host.url, host.token, host.tags, host.verify_tls, host.ca_bundle, host.enabled)
        if not created and before == after:
            self.stdout.write(f"Host {host.name} unchanged.")
            return
        try:
            if created:
                host.save()
            else:
                # Only what this command sets: a poll finishing meanwhile keeps its status.
                host.save(update_fields=["url", "token", "tags", "verify_tls", "ca_bundle", "enabled"])
        except IntegrityError:
            raise CommandError(
                f"Another process added a host named {host.name} meanwhile; run again."
            ) from None
        self.stdout.write(f"{'Created' if created else 'Updated'} host {host.name}.")
