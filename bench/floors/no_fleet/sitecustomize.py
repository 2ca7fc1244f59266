"""A measurement, never a deployment: poll_hosts without the fleet rollup (FleetAddress and its
totals are not written), to see what the rollup costs a round. Run a round under it with
BENCH_FLEET_WRAP="env PYTHONPATH=$PWD/bench/floors/no_fleet" (bench/README.md, "What a first
round costs, part by part"). The round's check still passes: it reads the hosts' rows, not the fleet's."""

import django

_setup = django.setup


def setup(*args, **kwargs):
    _setup(*args, **kwargs)
    from inventory_app.models import FleetAddressQuerySet

    FleetAddressQuerySet.change = lambda self, host_id, changes: None


django.setup = setup
