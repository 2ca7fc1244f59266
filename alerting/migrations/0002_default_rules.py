"""The four rules of issue 13, enabled, with their default thresholds (rules.REGISTRY holds the
same defaults; receivers.after_migrate recreates a row that is missing)."""

from datetime import timedelta

from django.db import migrations

DEFAULTS = [
    ("login_after_failures", timedelta(hours=24), {}),
    ("new_login", timedelta(days=30), {"ipv4_prefix": 24, "ipv6_prefix": 64}),
    ("brute_force", timedelta(hours=1), {"failed_attempts": 100, "hosts": 3}),
    ("host_needs_look", timedelta(hours=24),
     {"failed_rounds": 3, "silent_hours": 24, "unknown_minimum": 20, "unknown_factor": 5}),
]


def create_rules(apps, schema_editor):
    Rule = apps.get_model("alerting", "Rule")
    for kind, window, params in DEFAULTS:
        Rule.objects.get_or_create(
            kind=kind, defaults={"window": window, "params": params, "quiet_period": timedelta(hours=1)}
        )


class Migration(migrations.Migration):
    dependencies = [("alerting", "0001_initial")]

    operations = [migrations.RunPython(create_rules, migrations.RunPython.noop)]
