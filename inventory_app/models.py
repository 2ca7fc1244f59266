"""The central server's inventory of monitored hosts, and what polling stored from them."""

from __future__ import annotations

from datetime import timedelta

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from collector.sessions import DAY_FIELDS

# A host's state after its last poll: ok; stale when its agent answered but is not following its
# logs (the counts are getting old); down when the poll failed (unreachable, timed out, refused,
# or an answer that failed validation: last_error says which).
OK = "ok"
STALE = "stale"
DOWN = "down"
NEVER_POLLED = "never polled"
STATES = [(OK, "ok"), (STALE, "stale"), (DOWN, "down"), (NEVER_POLLED, "never polled")]

# The per-day counts an agent reports (its own definitions, in collector.sessions).
COUNT_FIELDS = DAY_FIELDS

host_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", "Use letters, digits, '.', '_' and '-' (a host name)."
)


class HostQuerySet(models.QuerySet):
    def enabled(self) -> HostQuerySet:
        return self.filter(enabled=True)

    def with_tag(self, tag: str) -> HostQuerySet:
        # Tags are stored as ",a,b," so that one tag matches exactly, not as a substring.
        return self.filter(tags__contains=f",{tag},")


class Host(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[host_name_validator])
    url = models.URLField(
        max_length=300, help_text="The agent's base URL, e.g. https://web1.example.com:8001"
    )
    token = models.CharField(max_length=300, help_text="The agent's ALPHA_AGENT_TOKEN.")
    enabled = models.BooleanField(default=True)
    tags = models.CharField(max_length=300, blank=True, default="", help_text="Comma-separated.")
    notes = models.TextField(blank=True, default="")
    verify_tls = models.BooleanField(default=True, help_text="Check the agent's TLS certificate.")
    ca_bundle = models.CharField(
        max_length=300, blank=True, default="", help_text="CA bundle path for this agent."
    )

    # Kept by polling.
    state = models.CharField(max_length=20, choices=STATES, default=NEVER_POLLED)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    agent_version = models.CharField(max_length=40, blank=True, default="")
    unread_bytes = models.BigIntegerField(null=True, blank=True)
    # From the agent's health, summed over its log sources.
    malformed_lines = models.BigIntegerField(null=True, blank=True)
    unknown_last_24h = models.BigIntegerField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    # Days up to and including this one are stored complete (not today's, still growing).
    polled_through = models.DateField(null=True, blank=True)
    # Set while a poll of this host runs: a conditional UPDATE claims it (see polling.claim).
    polling_since = models.DateTimeField(null=True, blank=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["state"], name="host_state")]  # admin filter, fleet pages

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.tags = ",".join(self.tag_list()).join(",,") if self.tag_list() else ""
        super().save(*args, **kwargs)

    def tag_list(self) -> list[str]:
        return sorted({t.strip() for t in self.tags.split(",") if t.strip()})

    def masked_token(self) -> str:
        """Enough of the token to tell two apart, never the whole."""
        return f"{self.token[:4]}…" if len(self.token) > 8 else "…"


class HostDay(models.Model):
    """One host's counts on one day as its agent last reported them (replaced, never added to)."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="days")
    day = models.DateField()
    sessions = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    failed_attempts = models.BigIntegerField(default=0)
    failed_sessions = models.BigIntegerField(default=0)
    invalid_user_sessions = models.BigIntegerField(default=0)
    preauth_only = models.BigIntegerField(default=0)
    unique_sources = models.BigIntegerField(default=0)
    # The agent's ten busiest user names of the day: [{user, sessions, failed_attempts, accepted}].
    top_users = models.JSONField(default=list)
    polled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "day"], name="hostday_host_day")]
        # Fleet views aggregate one day (or range) over all hosts.
        indexes = [models.Index(fields=["day"], name="hostday_day")]

    def is_stale(self, interval_seconds: int) -> bool:
        return timezone.now() - self.polled_at > timedelta(seconds=3 * interval_seconds)


class HostSource(models.Model):
    """A source address seen by one host on one day."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="sources")
    day = models.DateField()
    ip = models.CharField(max_length=255)
    sessions = models.BigIntegerField(default=0)
    failed_attempts = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    users = models.JSONField(default=list)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "day", "ip"], name="hostsource_host_day_ip")]
        # The fleet's attackers of a day: group by ip over hosts.
        indexes = [models.Index(fields=["day", "ip"], name="hostsource_day_ip")]
