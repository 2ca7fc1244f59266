"""Celery tasks: thin wrappers that take ids and call rules.py and delivery.py."""

from __future__ import annotations

from alphaproject.celery import app

from . import delivery, rules


@app.task(name="alerting.evaluate", ignore_result=True)
def evaluate() -> int:
    """Evaluate every rule (after a round: receivers.schedule_evaluation), then queue every due
    delivery: the new ones, and any whose retry was lost (a worker killed, Redis flushed)."""
    rules.evaluate()
    due = list(delivery.Delivery.objects.due().values_list("pk", flat=True)[:1000])
    for delivery_id in due:
        deliver.delay(delivery_id)
    return len(due)


@app.task(name="alerting.deliver", bind=True, ignore_result=True, max_retries=None)
def deliver(self, delivery_id: int) -> None:
    # The backoff lives in the database (attempts, next_attempt_at): the task comes back when the
    # delivery is due again, and stops once it is sent or given up on.
    wait = delivery.attempt(delivery_id)
    if wait is not None:
        raise self.retry(countdown=wait)
