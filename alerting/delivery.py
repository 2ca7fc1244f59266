"""Delivering stored alerts to their channels, one attempt at a time, with backoff.

Called by the Celery task (tasks.deliver, which retries at the time attempt() returns) and by
`manage.py poll_hosts` after every round and while it waits (deliver_due). A delivery is
claimed with a conditional UPDATE before it is tried, so a Celery retry and a sweep, or two
workers, never send it twice at once; a process killed mid-attempt leaves it pending, due again
when its claim runs out.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone
from urllib3.exceptions import HTTPError as Urllib3Error

from inventory_app.fetching import AgentAdapter, Deadline, reason, watched

from . import formatting
from .models import EMAIL, FAILED, PENDING, SENT, SLACK, WEBHOOK, Alert, Channel, Delivery

logger = logging.getLogger(__name__)

# Bytes of a receiver's answer read at most (for the error message; the rest is not wanted).
ANSWER_BYTES = 4096


class DeliveryError(Exception):
    """Why an attempt failed, in one sentence for the delivery's last_error."""


def alert_fields(alert: Alert) -> dict:
    """The alert as every channel sees it: the webhook's fields, and the key."""
    return {
        "rule": str(alert.rule),
        "severity": alert.severity,
        "summary": alert.summary,
        "address": alert.address,
        "user": alert.user,
        "hosts": alert.host_list(),
        "first_seen": alert.first_seen.isoformat(),
        "last_seen": alert.last_seen.isoformat(),
        "count": alert.count,
        "url": alert.public_url(),
        "key": alert.key,
    }


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling, up to the maximum."""
    first, most = settings.ALPHA_ALERT_RETRY_SECONDS, settings.ALPHA_ALERT_RETRY_MAX_SECONDS
    return min(first * 2 ** min(attempts - 1, 30), most)


def claim(delivery_id: int) -> bool:
    """Take a due delivery for one attempt: its next_attempt_at moves past the attempt's longest
    possible end, so nobody else takes it meanwhile."""
    now = timezone.now()
    lease = timedelta(seconds=settings.ALPHA_ALERT_TIMEOUT + max(settings.EMAIL_TIMEOUT, 1) + 30)
    return (
        Delivery.objects.filter(pk=delivery_id, state=PENDING, next_attempt_at__lte=now).update(
            next_attempt_at=now + lease
        )
        == 1
    )


def attempt(delivery_id: int) -> float | None:
    """Try a due delivery once. Returns the seconds until its next attempt if it is still
    pending afterwards, None if it was sent, given up on, or not due (or taken by another)."""
    if not claim(delivery_id):
        return None
    delivery = Delivery.objects.select_related("alert__rule", "channel").get(pk=delivery_id)
    try:
        if not delivery.channel.enabled:
            raise DeliveryError("The channel is disabled; enable it and retry.")
        send(delivery.channel, alert_fields(delivery.alert))
    except DeliveryError as exc:
        return failed(delivery, str(exc))
    except Exception:
        logger.exception("Delivering alert %s to %s failed unexpectedly", delivery.alert_id, delivery.channel)
        return failed(delivery, "Failed unexpectedly; see the central server's log.")
    delivery.state, delivery.sent_at = SENT, timezone.now()
    delivery.attempts += 1
    delivery.last_error = ""
    delivery.save(update_fields=["state", "sent_at", "attempts", "last_error"])
    return None


def failed(delivery: Delivery, error: str) -> float | None:
    delivery.attempts += 1
    delivery.last_error = error[:300]
    if delivery.attempts >= settings.ALPHA_ALERT_MAX_ATTEMPTS:
        delivery.state = FAILED
        wait = None
    else:
        wait = backoff(delivery.attempts)
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=wait)
    delivery.save(update_fields=["attempts", "last_error", "state", "next_attempt_at"])
    logger.warning("Alert %s not delivered to %s: %s", delivery.alert_id, delivery.channel, error)
    return wait


def deliver_due(limit: int = 200) -> dict[str, int]:
    """One attempt for each delivery that is due (at most `limit`, oldest first): what poll_hosts
    runs. Returns how many ended sent, pending (to be retried) and failed."""
    ids = list(Delivery.objects.due().values_list("pk", flat=True)[:limit])
    outcome = {SENT: 0, PENDING: 0, FAILED: 0}
    for delivery_id in ids:
        attempt(delivery_id)
        state = Delivery.objects.filter(pk=delivery_id).values_list("state", flat=True).first()
        if state in outcome:
            outcome[state] += 1
    return outcome


def retry_now(delivery_ids) -> int:
    """Make deliveries (pending or given up on) due at once: the admin's "Retry now"."""
    with transaction.atomic():
        return (
            Delivery.objects.filter(pk__in=delivery_ids)
            .exclude(state=SENT)
            .update(state=PENDING, next_attempt_at=timezone.now(), attempts=0)
        )


# --- Channels ---------------------------------------------------------------------------------


def send(channel: Channel, alert: dict) -> None:
    if channel.kind == EMAIL:
        send_email(channel, alert)
    elif channel.kind == WEBHOOK:
        body = formatting.webhook_body(alert)
        post(channel.url, body, {formatting.SIGNATURE_HEADER: formatting.signature(body, channel.secret)})
    elif channel.kind == SLACK:
        post(channel.url, formatting.slack_body(alert), {})
    else:
        raise DeliveryError(f"Unknown channel kind {channel.kind!r}.")


def send_email(channel: Channel, alert: dict) -> None:
    recipients = channel.recipients()
    if not recipients:
        raise DeliveryError("The channel has no email address.")
    message = EmailMessage(formatting.email_subject(alert), formatting.email_text(alert), to=recipients)
    try:
        message.send()
    except OSError as exc:  # smtplib's errors are OSErrors, as are refused connections
        raise DeliveryError(
            f"Sending mail through {settings.EMAIL_HOST}:{settings.EMAIL_PORT} failed: {reason(exc)}."
        ) from None


def post(url: str, body: bytes, headers: dict) -> None:
    """POST JSON within ALPHA_ALERT_TIMEOUT in all (inventory_app.fetching's watchdog cuts a
    receiver that trickles its answer), no redirects, nothing from the environment (proxies,
    .netrc), reading at most ANSWER_BYTES of the answer."""
    seconds = settings.ALPHA_ALERT_TIMEOUT
    deadline = Deadline(seconds, "delivery")
    with requests.Session() as http:
        http.trust_env = False
        http.mount("http://", AgentAdapter(pool_maxsize=1))
        http.mount("https://", AgentAdapter(pool_maxsize=1))
        with watched(deadline):
            try:
                with http.post(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json", "User-Agent": "Alpha alerts", **headers},
                    timeout=(min(3.0, seconds), seconds),
                    allow_redirects=False,
                    stream=True,
                ) as response:
                    answer = response.raw.read(ANSWER_BYTES, decode_content=False) or b""
                    status = response.status_code
            except (requests.RequestException, Urllib3Error, OSError) as exc:
                if deadline.expired():
                    raise DeliveryError(
                        f"{url} did not answer within {seconds:g} s (ALPHA_ALERT_TIMEOUT)."
                    ) from None
                raise DeliveryError(f"Cannot post to {url}: {reason(exc)}.") from None
    if not 200 <= status < 300:
        text = answer.decode("utf-8", "replace").strip().splitlines()
        detail = f": {formatting.visible(text[0])[:120]}" if text else ""
        raise DeliveryError(f"{url} answered HTTP {status}{detail}.")
