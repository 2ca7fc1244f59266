"""Channels from the environment, for scripted setups (ALPHA_ALERT_WEBHOOK_URL with
ALPHA_ALERT_WEBHOOK_SECRET, ALPHA_ALERT_EMAIL_TO): created at migrate, attached to every rule
when created, and brought back in line with the environment at every later migrate. An admin's
other edits (enabled, which rules) are kept."""

from __future__ import annotations

from django.conf import settings

from .models import EMAIL, WEBHOOK, Channel, Rule

ENV_WEBHOOK = "Webhook (ALPHA_ALERT_WEBHOOK_URL)"
ENV_EMAIL = "Email (ALPHA_ALERT_EMAIL_TO)"


def sync_env_channels() -> list[tuple[Channel, bool]]:
    wanted = []
    if settings.ALPHA_ALERT_WEBHOOK_URL:
        wanted.append(
            (
                ENV_WEBHOOK,
                {
                    "kind": WEBHOOK,
                    "url": settings.ALPHA_ALERT_WEBHOOK_URL,
                    "secret": settings.ALPHA_ALERT_WEBHOOK_SECRET,
                },
            )
        )
    if settings.ALPHA_ALERT_EMAIL_TO:
        wanted.append((ENV_EMAIL, {"kind": EMAIL, "email_to": ", ".join(settings.ALPHA_ALERT_EMAIL_TO)}))
    done = []
    for name, fields in wanted:
        channel, created = Channel.objects.update_or_create(name=name, defaults=fields)
        if created:
            for rule in Rule.objects.all():
                rule.channels.add(channel)
        done.append((channel, created))
    return done
