"""What polling tells the apps that build on it (alerting evaluates after every round) without
importing them: imports go one way."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by `manage.py poll_hosts` after each round it ran in this process (also its --once round,
# before it exits: receivers finish their work before it does).
round_finished = Signal()

# Sent by the Celery task poll_all_hosts once it has fanned a round out, with `timeout`: the
# seconds after which every poll of the round has started or been dropped (its expiry).
round_dispatched = Signal()

# Sent every few seconds while `manage.py poll_hosts` waits for its next round.
poller_waiting = Signal()
