"""Alert rules, the channels alerts go to, the alerts themselves and each one's deliveries.

Stored first, then delivered: an alert and its pending deliveries are committed together, before
any channel is tried (delivery.py), so a channel that is down, or a process killed mid-send,
loses nothing: the delivery is still pending and is tried again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from collector.contract import MAX_ADDRESS_LENGTH, MAX_USER_LENGTH

EMAIL = "email"
WEBHOOK = "webhook"
SLACK = "slack"
CHANNEL_KINDS = [(EMAIL, "email"), (WEBHOOK, "webhook (signed JSON)"), (SLACK, "Slack-compatible webhook")]

INFO = "info"
WARNING = "warning"
CRITICAL = "critical"
SEVERITIES = [(INFO, "info"), (WARNING, "warning"), (CRITICAL, "critical")]

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
ALERT_STATES = [(OPEN, "open"), (ACKNOWLEDGED, "acknowledged")]

PENDING = "pending"
SENT = "sent"
FAILED = "failed"  # gave up after ALPHA_ALERT_MAX_ATTEMPTS; "Retry now" in the admin resumes it
DELIVERY_STATES = [(PENDING, "pending"), (SENT, "sent"), (FAILED, "failed")]


class Channel(models.Model):
    kind = models.CharField(max_length=10, choices=CHANNEL_KINDS)
    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(
        max_length=500, blank=True, default="", help_text="Webhook and Slack: where to POST."
    )
    secret = models.CharField(
        max_length=300,
        blank=True,
        default="",
        help_text="Webhook: the key of the X-Alpha-Signature HMAC (at least 16 characters).",
    )
    email_to = models.CharField(
        max_length=500, blank=True, default="", help_text="Email: addresses, separated by commas."
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind in (WEBHOOK, SLACK) and not self.url:
            raise ValidationError({"url": "A webhook channel needs its URL."})
        if self.kind == WEBHOOK and len(self.secret) < 16:
            raise ValidationError({"secret": "A webhook channel needs a secret of at least 16 characters."})
        if self.kind == EMAIL and not self.recipients():
            raise ValidationError({"email_to": "An email channel needs at least one address."})

    def recipients(self) -> list[str]:
        return [a.strip() for a in self.email_to.split(",") if a.strip()]

    def masked_secret(self) -> str:
        return f"{self.secret[:4]}…" if len(self.secret) > 8 else ("…" if self.secret else "")


class RuleQuerySet(models.QuerySet):
    def ensure_all(self) -> list[Rule]:
        """A row for every registered rule kind (rules.REGISTRY), with its defaults; rows that
        exist are left as an admin edited them. Returns the rows created."""
        from .rules import REGISTRY

        existing = set(self.values_list("kind", flat=True))
        created = []
        for kind in REGISTRY.values():
            if kind.kind not in existing:
                rule = self.create(kind=kind.kind, window=kind.window, params=dict(kind.params))
                rule.channels.set(Channel.objects.all())
                created.append(rule)
        return created


class Rule(models.Model):
    """One row per rule kind (rules.REGISTRY), created by migrate; edited in the admin."""

    kind = models.CharField(max_length=40, unique=True)
    enabled = models.BooleanField(default=True)
    window = models.DurationField(help_text="How far back the rule looks (e.g. 1:00:00 for an hour).")
    quiet_period = models.DurationField(
        default=timedelta(hours=1),
        help_text="A repeat less than this after the alert's last activity updates it instead of "
        "raising (and sending) a new one.",
    )
    params = models.JSONField(default=dict, blank=True, help_text="The rule's thresholds (see below).")
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")

    objects = RuleQuerySet.as_manager()

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return self.definition.name if self.definition else self.kind

    @property
    def definition(self):
        from .rules import REGISTRY

        return REGISTRY.get(self.kind)

    def param(self, name: str) -> int:
        """A threshold: the admin's value, else the kind's default."""
        value = self.params.get(name) if isinstance(self.params, dict) else None
        return value if type(value) is int else self.definition.params[name]

    def clean(self) -> None:
        if self.definition is None:
            raise ValidationError({"kind": "No rule of this kind is registered."})
        if not isinstance(self.params, dict):
            raise ValidationError({"params": "Give the thresholds as a JSON object."})
        for name, value in self.params.items():
            if name not in self.definition.params:
                known = ", ".join(self.definition.params) or "none"
                raise ValidationError(
                    {"params": f"{name!r} is not a threshold of this rule (it has: {known})."}
                )
            if type(value) is not int or value < 0:
                raise ValidationError({"params": f"{name} must be a whole number, at least 0."})
        if self.window <= timedelta(0) or self.quiet_period < timedelta(0):
            raise ValidationError("The window must be positive and the quiet period not negative.")


class AlertQuerySet(models.QuerySet):
    def filtered(self, state: str = "", rule: str = "", host: str = "") -> AlertQuerySet:
        """The alerts page's and the API's filters (each optional)."""
        qs = self
        if state:
            qs = qs.filter(state=state)
        if rule:
            qs = qs.filter(rule__kind=rule)
        if host:
            # Stored as ",a,b,": one name matches exactly, not as a substring.
            qs = qs.filter(hosts__contains=f",{host},")
        return qs.order_by("-last_seen", "-pk")

    def campaign(self, rule: Rule, key: str) -> Alert | None:
        """The latest alert of this rule and key: the campaign a new finding may belong to."""
        return self.filter(rule=rule, key=key).order_by("-last_seen", "-pk").first()

    def campaigns(self, rule: Rule, keys, since: datetime) -> dict[str, Alert]:
        """campaign() for many keys at once, among the alerts last seen at `since` or later: an
        older latest alert is past every finding's quiet period, so it would not be folded into."""
        keys, latest = sorted(keys), {}
        for i in range(0, len(keys), 500):  # SQLite's limit on a query's parameters
            chunk = self.filter(rule=rule, key__in=keys[i : i + 500], last_seen__gte=since)
            for alert in chunk.order_by("key", "-last_seen", "-pk"):
                latest.setdefault(alert.key, alert)
        return latest


def host_field(names) -> str:
    names = sorted(set(names))
    return ",".join(names).join(",,") if names else ""


class Alert(models.Model):
    """One campaign: what a rule found for one key (an address, a user, a host), from its first
    to its last activity. Repeats within the rule's quiet period update it (count, last_seen,
    hosts) and send nothing."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="alerts")
    key = models.CharField(max_length=400)
    severity = models.CharField(max_length=10, choices=SEVERITIES, default=WARNING)
    summary = models.TextField()
    # Attacker text, as logged: escaped wherever shown (formatting.py, templates).
    address = models.CharField(max_length=MAX_ADDRESS_LENGTH, blank=True, default="")
    user = models.CharField(max_length=MAX_USER_LENGTH, blank=True, default="")
    # Host names as ",a,b," (Host.tags' convention) so that a filter matches one name exactly.
    hosts = models.TextField(blank=True, default="")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.PositiveIntegerField(
        default=1, help_text="Times the rule found new activity in this campaign."
    )
    state = models.CharField(max_length=20, choices=ALERT_STATES, default=OPEN)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-last_seen", "-pk"]
        indexes = [
            # Evaluation: the campaign of a rule and key (AlertQuerySet.campaign).
            models.Index(fields=["rule", "key", "-last_seen"], name="alert_campaign"),
            # The alerts page and API: newest first, by state.
            models.Index(fields=["state", "-last_seen"], name="alert_state_seen"),
        ]
        permissions = [("acknowledge_alert", "Can acknowledge alerts")]

    def __str__(self) -> str:
        return f"{self.rule}: {self.key}"

    def host_list(self) -> list[str]:
        return [h for h in self.hosts.split(",") if h]

    def dashboard_path(self) -> str:
        from django.urls import reverse

        return f"{reverse('dashboard-alerts')}?alert={self.pk}"

    def public_url(self) -> str:
        return settings.ALPHA_PUBLIC_URL + self.dashboard_path()

    def acknowledge(self, user) -> bool:
        """Mark acknowledged (by `user`); False if it already was. A conditional UPDATE, so two
        people acknowledging at once record one of them."""
        now = timezone.now()
        done = Alert.objects.filter(pk=self.pk, state=OPEN).update(
            state=ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=user, updated_at=now
        )
        self.refresh_from_db()
        return done == 1

    def absorb(self, finding) -> bool:
        """Fold a repeat of the campaign into this alert; False if it brings no new activity."""
        if finding.last_seen <= self.last_seen:
            return False
        self.last_seen = finding.last_seen
        self.first_seen = min(self.first_seen, finding.first_seen)
        self.count += 1
        self.summary = finding.summary
        self.hosts = host_field([*self.host_list(), *finding.hosts])
        self.updated_at = timezone.now()
        self.save(update_fields=["last_seen", "first_seen", "count", "summary", "hosts", "updated_at"])
        return True


class DeliveryQuerySet(models.QuerySet):
    def due(self, now: datetime | None = None) -> DeliveryQuerySet:
        return self.filter(state=PENDING, next_attempt_at__lte=now or timezone.now()).order_by(
            "next_attempt_at", "pk"
        )


class Delivery(models.Model):
    """One alert to one channel: pending until sent, retried with backoff."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=10, choices=DELIVERY_STATES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When it is due; while an attempt runs, the end of that attempt's claim (delivery.claim).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=300, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["alert", "channel"], name="delivery_alert_channel")]
        # delivery.deliver_due(): pending rows whose time has come.
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.alert} → {self.channel} ({self.state})"


class HostBaseline(models.Model):
    """What is usual for one host, for rules that compare a host with its own past: its health's
    unknown sshd messages in the last 24 h, sampled once an hour for a week."""

    host = models.OneToOneField("inventory_app.Host", on_delete=models.CASCADE, related_name="+")
    # {hour (epoch // 3600): unknown_last_24h as polled in that hour}
    unknown_hours = models.JSONField(default=dict)

    def add_sample(self, hour: int, value: int, keep_hours: int) -> None:
        samples = {int(h): v for h, v in self.unknown_hours.items() if int(h) > hour - keep_hours}
        samples[hour] = value
        self.unknown_hours = {str(h): v for h, v in samples.items()}

    def earlier_samples(self, hour: int) -> list[int]:
        return [v for h, v in self.unknown_hours.items() if int(h) < hour]
