"""What alerting does when migrate or polling says something happened (apps.py connects these)."""

from __future__ import annotations

import functools

from django.conf import settings
from django.db import InterfaceError, OperationalError


def database_down_returned(receiver):
    """The poller sends its signals with send_robust, which logs a receiver's exception with a
    traceback. The database being down is expected there (the poller says so in one line and
    tries again), so that failure is the receiver's result instead, which the poller reports."""

    @functools.wraps(receiver)
    def guarded(*args, **kwargs):
        try:
            return receiver(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            return exc

    return guarded


def after_migrate(sender, using: str, apps=None, verbosity: int = 1, **kwargs) -> None:
    """After migrate (and test flushes): every rule kind has its row, and the channels named in the
    environment exist as the environment says."""
    try:
        # The migration state, not the app registry: `migrate inventory_app` alone leaves ours uncreated.
        (apps or sender.apps).get_model("alerting", "Rule")
    except LookupError:
        return
    from .channels import sync_env_channels
    from .models import Rule

    created = Rule.objects.using(using).ensure_all()
    for channel, was_created in sync_env_channels():
        if verbosity >= 2 and was_created:
            print(f"Created the alert channel {channel.name!r} from the environment.")
    if created and verbosity >= 2:
        print(f"Created the alert rules {', '.join(str(r) for r in created)}.")


@database_down_returned
def evaluate_and_deliver(sender, stdout=None, **kwargs) -> None:
    """poll_hosts finished a round (also its --once round): evaluate, then one attempt for every
    due delivery, before the command goes on (or exits)."""
    from . import delivery, rules

    new = rules.evaluate()
    outcome = delivery.deliver_due()
    if stdout is not None and (new or any(outcome.values())):
        stdout.write(
            f"Alerts: {len(new)} new delivery(ies); {outcome['sent']} sent, "
            f"{outcome['pending']} to retry, {outcome['failed']} given up."
        )


@database_down_returned
def deliver_retries(sender, **kwargs) -> None:
    """poll_hosts is waiting for its next round: deliveries whose retry time came are tried."""
    from . import delivery

    delivery.deliver_due()


def schedule_evaluation(sender, timeout: float, **kwargs) -> None:
    """A Celery round was fanned out: evaluate once it is over.

    A countdown rather than a chord: a chord needs a result backend (we have none: every task
    ignores its result) and never fires when a poll of its group expires unstarted, which is
    exactly what the round's `expires` is for. By `timeout` every poll has started or been
    dropped; the few still running then are evaluated with the next round, as rules read the
    whole database, not this round's answers."""
    from . import tasks

    tasks.evaluate.apply_async(countdown=timeout, expires=timeout + settings.ALPHA_POLL_INTERVAL)
