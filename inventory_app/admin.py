"""The inventory UI: hosts in the Django admin, with their polling status and a "Poll now" action.
A second entry for an agent already listed (its URL spelled another way) is refused.

The agent token is write-only here: pages show only Host.masked_token(), a blank token field
keeps the stored one, and no lookup, filter or search of the changelist may touch the token
(`?token__startswith=a` would let any staff user guess it a character at a time). What agents
send (last_error, agent_version) is shown escaped, as the admin does for every value.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.utils import timezone

from . import polling
from .inventory import check_token, parse_tags, sentence, stored_tags
from .models import Host, normalised_url

STATUS_FIELDS = (
    "state",
    "duplicate_of",
    "agent_host",
    "claimed",
    "last_poll_at",
    "last_success_at",
    "last_error",
    "consecutive_failures",
    "agent_version",
    "malformed_lines",
    "unknown_last_24h",
    "unread_bytes",
    "last_event_at",
    "polled_through",
)


class TokenField(forms.CharField):
    widget = forms.PasswordInput(render_value=False)

    def has_changed(self, initial, data) -> bool:
        # Blank keeps the stored token, so only a typed, different one is a change.
        return bool(data) and data != initial


class HostForm(forms.ModelForm):
    # A URL typed without a scheme becomes https://, the default from Django 6 on.
    url = forms.URLField(
        assume_scheme="https", max_length=300, help_text=Host._meta.get_field("url").help_text
    )
    token = TokenField(
        required=False,
        max_length=300,
        help_text="The agent's ALPHA_AGENT_TOKEN. Leave blank to keep the current one.",
    )

    class Meta:
        model = Host
        fields = ["name", "url", "token", "enabled", "tags", "notes", "verify_tls", "ca_bundle"]
        help_texts = {"tags": "Separated by commas, ';' or spaces."}

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        # One agent, one entry: a second would be refused at every poll (identity.py).
        other = Host.objects.filter(agent_url=normalised_url(url)).exclude(pk=self.instance.pk).first()
        if other is not None:
            raise forms.ValidationError(
                f"{other.name} already polls the agent at {other.url}: one agent needs one entry, or its "
                "connections are counted twice. Edit that entry instead."
            )
        return url

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].strip()
        if not token:
            if self.instance.pk:
                return self.instance.token
            raise forms.ValidationError("Enter the agent's token.")
        try:
            return check_token(token)
        except ValueError as exc:
            raise forms.ValidationError(sentence(str(exc))) from None

    def clean_tags(self) -> str:
        try:
            return stored_tags(parse_tags(self.cleaned_data["tags"]))
        except ValueError as exc:
            raise forms.ValidationError(sentence(str(exc))) from None


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        tags = set()
        for stored in Host.objects.exclude(tags="").order_by().values_list("tags", flat=True).distinct():
            tags.update(t for t in stored.split(",") if t)
        return [(t, t) for t in sorted(tags)]

    def queryset(self, request, queryset):
        return queryset.with_tag(self.value()) if self.value() else queryset


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    form = HostForm
    list_display = (
        "name",
        "state_display",
        "enabled",
        "last_success_at",
        "last_error",
        "consecutive_failures",
        "agent_version",
        "tag_display",
    )
    list_filter = ("state", "enabled", TagFilter)
    search_fields = ("name", "url", "tags", "notes")
    readonly_fields = ("current_token", *STATUS_FIELDS)
    fieldsets = (
        (None, {"fields": ("name", "url", "current_token", "token", "enabled", "tags", "notes")}),
        ("TLS", {"fields": ("verify_tls", "ca_bundle")}),
        ("Polling status", {"fields": STATUS_FIELDS}),
    )
    actions = ["poll_now"]

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        if lookup.split("__")[0] == "token":
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # A view-only page shows every field's value: never the token's.
            return [
                (name, {**opts, "fields": [f for f in opts["fields"] if f != "token"]})
                for name, opts in fieldsets
            ]
        return fieldsets

    @admin.display(description="state", ordering="state")
    def state_display(self, host: Host) -> str:
        claim = self.claimed(host)
        return f"{host.state} ({claim})" if claim != "-" else host.state

    @admin.display(description="claimed by a poll")
    def claimed(self, host: Host) -> str:
        """A poll holds the host: since when, and until when another may take it over (a poller
        killed with -9 leaves its claim until then)."""
        if host.polling_since is None:
            return "-"
        until = timezone.localtime(host.polling_since + timezone.timedelta(seconds=settings.ALPHA_POLL_LEASE))
        since = timezone.localtime(host.polling_since)
        return f"being polled since {since:%H:%M:%S}, claim expires {until:%H:%M:%S}"

    @admin.display(description="tags", ordering="tags")
    def tag_display(self, host: Host) -> str:
        return ", ".join(host.tag_list())

    @admin.display(description="current token")
    def current_token(self, host: Host) -> str:
        return host.masked_token() if host.pk else "-"

    def save_model(self, request, obj, form, change):
        if change:
            # Only the form's fields: a poll finishing while the page was open keeps its status.
            obj.save(update_fields=HostForm.Meta.fields)
        else:
            obj.save()

    @admin.action(description="Poll now", permissions=["change"])
    def poll_now(self, request, queryset):
        ids = list(queryset.filter(enabled=True).values_list("pk", flat=True))
        disabled = queryset.filter(enabled=False).count()
        # In this request, so it ends within ALPHA_POLL_NOW_TIMEOUT (below gunicorn's timeout).
        deadline = polling.round_deadline(settings.ALPHA_POLL_NOW_TIMEOUT)
        states = polling.poll_round(ids, deadline=deadline) if ids else {}
        parts = [f"{n} {state}" for state, n in sorted(states.items())]
        if disabled:
            parts.append(f"{disabled} disabled, not polled")
        level = messages.SUCCESS if set(states) <= {"ok"} else messages.WARNING
        self.message_user(request, f"Polled {len(ids)} host(s): {', '.join(parts) or 'none'}.", level)
