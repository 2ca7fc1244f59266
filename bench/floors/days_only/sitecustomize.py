"""A measurement, never a deployment: poll_hosts fetching and checking every answer as usual but
storing only each host's day rows and logins (no sources, no fleet rollup): the floor of a round
whatever the storage. Run a round under it with
BENCH_FLEET_WRAP="env PYTHONPATH=$PWD/bench/floors/days_only" (bench/README.md, "What a first
round costs, part by part"). The round's check reports every host wrong: it has no sources."""

import django

_setup = django.setup


def setup(*args, **kwargs):
    _setup(*args, **kwargs)
    from inventory_app.models import FleetAddressQuerySet, HostSourceQuerySet

    FleetAddressQuerySet.change = lambda self, host_id, changes: None
    HostSourceQuerySet.replace_day = lambda self, host_id, day, rows: None


django.setup = setup
