"""Celery tasks: thin wrappers that take ids and call polling.py."""

from __future__ import annotations

from celery import group
from django.conf import settings
from django.utils import timezone

from alphaproject.celery import app
from collector.retention import prune

from . import polling
from .models import Host
from .signals import round_dispatched


@app.task(name="inventory_app.poll_all_hosts", ignore_result=True)
def poll_all_hosts() -> int:
    """Fan out one task per enabled host; run every ALPHA_POLL_INTERVAL by Celery beat."""
    ids = list(Host.objects.enabled().values_list("pk", flat=True))
    if ids:
        # A poll still queued when the round should be over is dropped (the next round has it),
        # so that a backlog behind slow hosts never piles up round after round.
        group(poll_host.s(host_id) for host_id in ids).apply_async(expires=settings.ALPHA_POLL_ROUND_TIMEOUT)
    round_dispatched.send(sender=poll_all_hosts, timeout=settings.ALPHA_POLL_ROUND_TIMEOUT)
    return len(ids)


@app.task(name="inventory_app.poll_host", ignore_result=True)
def poll_host(host_id: int) -> str:
    # No retry here: a failure is recorded on the host and the next round polls it again.
    return polling.poll_host(host_id)


@app.task(name="inventory_app.prune_detail", ignore_result=True)
def prune_detail() -> dict[str, int]:
    """Delete detail past ALPHA_RETAIN_DETAIL_DAYS (daily totals stay); run daily by beat."""
    return prune(timezone.localdate(), settings.ALPHA_RETAIN_DETAIL_DAYS)
