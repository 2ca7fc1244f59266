"""A measurement, never a deployment: poll_hosts with part of its storage switched off, to see
what each part costs a round (bench/README.md, "What a first round costs, part by part"). Run a
round under it with BENCH_FLEET_WRAP="env PYTHONPATH=$PWD/bench/floors BENCH_FLOOR=<floor>":

- no_fleet: the fleet rollup (FleetAddress and its totals) is not written; the round's check
  still passes, as it reads the hosts' rows, not the fleet's;
- days_only: only each host's day rows and logins are stored (no sources, no rollup), the floor
  of a round whatever the storage; the round's check reports every host wrong."""

import os
import sys

import django

FLOOR = os.environ.get("BENCH_FLOOR", "no_fleet")
if FLOOR not in ("no_fleet", "days_only"):
    sys.exit(f"BENCH_FLOOR must be no_fleet or days_only, not {FLOOR!r}.")

_setup = django.setup


def setup(*args, **kwargs):
    _setup(*args, **kwargs)
    from inventory_app.models import FleetAddressQuerySet, HostSourceQuerySet

    FleetAddressQuerySet.change = lambda self, host_id, changes: None
    if FLOOR == "days_only":
        HostSourceQuerySet.replace_day = lambda self, host_id, day, rows: None


django.setup = setup
