"""Alerts in the admin: channels and rules edited here; alerts and deliveries read-mostly (what
happened is not edited), with "Acknowledge" and "Retry now" actions. Secrets are write-only, as
agent tokens are in the inventory."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html_join

from . import delivery
from .models import Alert, Channel, Delivery, Rule


class ChannelForm(forms.ModelForm):
    url = forms.URLField(
        assume_scheme="https",
        required=False,
        max_length=500,
        help_text=Channel._meta.get_field("url").help_text,
    )
    secret = forms.CharField(
        required=False,
        max_length=300,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhook: the HMAC key (at least 16 characters). Leave blank to keep the current one.",
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "enabled", "url", "secret", "email_to"]

    def clean_secret(self) -> str:
        return self.cleaned_data["secret"].strip() or (self.instance.secret if self.instance.pk else "")


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ("name", "kind", "enabled", "url", "email_to")
    list_filter = ("kind", "enabled")
    readonly_fields = ("current_secret",)
    fields = ("name", "kind", "enabled", "url", "current_secret", "secret", "email_to")

    @admin.display(description="current secret")
    def current_secret(self, obj: Channel) -> str:
        return obj.masked_secret() or "none"


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "enabled", "window", "quiet_period", "params")
    list_filter = ("enabled",)
    fields = ("kind", "description", "enabled", "window", "quiet_period", "params", "thresholds", "channels")
    readonly_fields = ("kind", "description", "thresholds")
    filter_horizontal = ("channels",)

    # One row per rule kind, created by migrate.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="what it does")
    def description(self, obj: Rule) -> str:
        return obj.definition.description if obj.definition else "Not registered."

    @admin.display(description="thresholds")
    def thresholds(self, obj: Rule):
        if not obj.definition or not obj.definition.params:
            return "This rule has no thresholds."
        return format_html_join(
            "",
            "<p><code>{}</code> (default {}): {}</p>",
            (
                (name, default, obj.definition.meanings.get(name, ""))
                for name, default in obj.definition.params.items()
            ),
        )


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = readonly_fields = ("channel", "state", "attempts", "next_attempt_at", "last_error", "sent_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("last_seen", "rule", "key", "severity", "state", "count", "hosts")
    list_filter = ("state", "rule", "severity")
    search_fields = ("key", "address", "user", "hosts")
    date_hierarchy = "last_seen"
    readonly_fields = [f.name for f in Alert._meta.fields]
    inlines = [DeliveryInline]
    actions = ["acknowledge"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # viewable, not editable: an alert records what a rule found

    @admin.action(description="Acknowledge", permissions=["acknowledge"])
    def acknowledge(self, request, queryset) -> None:
        done = sum(alert.acknowledge(request.user) for alert in queryset)
        self.message_user(request, f"{done} alert(s) acknowledged.", messages.SUCCESS)

    def has_acknowledge_permission(self, request) -> bool:
        return request.user.has_perm("alerting.acknowledge_alert")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("alert", "channel", "state", "attempts", "next_attempt_at", "last_error", "sent_at")
    list_filter = ("state", "channel")
    readonly_fields = (
        "alert",
        "channel",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "sent_at",
        "created_at",
    )
    actions = ["retry"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Retry now", permissions=["change"])
    def retry(self, request, queryset) -> None:
        n = delivery.retry_now(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{n} delivery(ies) due now: the next round (or Celery sweep) sends them.")
