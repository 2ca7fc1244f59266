"""The central API's shapes: validated input, and the output contract (keep these names)."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from collector.contract import MAX_ADDRESS_LENGTH, MAX_USER_LENGTH, RangeError, date_range
from collector.serializers import (
    AcceptedLoginSerializer,
    DayCountsSerializer,
    RangeParamSerializer,
    TopSourceSerializer,
    TopUserSerializer,
)
from collector.serializers import CountsSerializer as AgentCountsSerializer

from .fleet import AFTER_FAILURES_MEANING, DISTINCT_MEANING, FLAGGED_MEANING, LOWER_BOUND_MEANING
from .models import STATES, HostLogin, host_name_validator

MAX_MIN_HOSTS = 1_000_000  # far above any fleet; keeps the number inside the database's integers


class CountsSerializer(AgentCountsSerializer):
    """The counts of a day, as the agent names them."""


# --- Input --------------------------------------------------------------------------------------


class FleetDayParamSerializer(serializers.Serializer):
    refresh = serializers.ChoiceField(
        choices=[0, 1],
        required=False,
        default=0,
        help_text="1: first fetch the day live from every enabled host, at once, all within "
        "ALPHA_POLL_NOW_TIMEOUT; a host that fails keeps its stored counts and shows refresh_error. "
        "Needs the permission inventory_app.refresh_day (403 otherwise), and a day from "
        "ALPHA_BACKFILL_DAYS ago to tomorrow.",
    )


# The range rule is the agent API's (collector.contract.date_range).
FleetRangeParamSerializer = RangeParamSerializer


class FleetSourceParamSerializer(serializers.Serializer):
    min_hosts = serializers.IntegerField(
        min_value=1,
        max_value=MAX_MIN_HOSTS,
        required=False,
        default=2,
        help_text="Only addresses seen on at least this many hosts that day (default 2).",
    )


class FleetLoginParamSerializer(RangeParamSerializer):
    """The dashboard's logins page's filters (dashboard.forms.LoginFilterForm), for the API."""

    since = serializers.DateField(
        input_formats=["%Y-%m-%d"], required=False, help_text="First day; default: until (one day)."
    )
    host = serializers.CharField(
        required=False, allow_blank=True, max_length=100, validators=[host_name_validator],
        help_text="Only this host's logins (its name).",
    )  # fmt: skip
    user = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=MAX_USER_LENGTH,
        help_text="Only logins as exactly this user name.",
    )  # fmt: skip
    ip = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_ADDRESS_LENGTH,
        help_text="Only logins from exactly this source address.",
    )  # fmt: skip
    method = serializers.RegexField(
        r"^[A-Za-z0-9@/._-]{1,64}$", required=False, allow_blank=True,
        help_text="Only logins by this method: publickey, password, keyboard-interactive/pam, ...",
    )  # fmt: skip

    def validate(self, data: dict) -> dict:
        # One day by default, as the logins page (the range endpoints default to 30).
        try:
            since, until = date_range(data.get("since"), data.get("until"), timezone.localdate(), 1)
        except RangeError as exc:
            raise serializers.ValidationError(str(exc)) from None
        filters = {name: data.get(name, "") for name in ("host", "user", "ip", "method")}
        return {"since": since, "until": until, **filters}


# --- Output -------------------------------------------------------------------------------------


class HostTodaySerializer(CountsSerializer):
    """The host's stored counts of today (zeros when none are stored)."""

    date = serializers.DateField(source="counts_day")
    polled_at = serializers.DateTimeField(
        allow_null=True, help_text="When today's counts were fetched; null: none stored (zeros)."
    )

    def get_fields(self):
        # date first, as in the agent's day objects.
        fields = super().get_fields()
        return {"date": fields.pop("date"), **fields}


class HostSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.ChoiceField(
        choices=STATES,
        help_text="ok; down: the last poll failed (last_error says why); stale: the agent answers but "
        "is not following its logs; no log source: the agent has no sshd log it can read (last_error "
        "says why); duplicate: another entry polls the same agent and counts it (last_error says which), "
        "so this one stores nothing and is in no total; never polled.",
    )
    last_success = serializers.DateTimeField(source="last_success_at", allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    today = HostTodaySerializer(source="*", help_text="The host's stored counts of today.")


class HostDaySerializer(DayCountsSerializer):
    """The agent's day object, as stored here."""

    host = serializers.CharField()
    top_sources = TopSourceSerializer(many=True, help_text="The 10 busiest addresses, from stored sources.")
    top_users = TopUserSerializer(many=True, help_text="The agent's 10 busiest user names (attacker text).")
    polled_at = serializers.DateTimeField(
        allow_null=True, help_text="When this day was fetched from the agent; null: none stored (zeros)."
    )
    stale = serializers.BooleanField(
        help_text="polled_at is older than 3 polling intervals (with nothing stored: the host's "
        "last successful poll is, or it never succeeded)."
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        return {"host": data.pop("host"), **data}  # the agent's order: host, date, counts


class FleetHostSerializer(CountsSerializer):
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=STATES)
    polled_at = serializers.DateTimeField(
        allow_null=True, help_text="When this host's day was fetched; null: none stored (zeros)."
    )
    refresh_error = serializers.CharField(
        allow_null=True, help_text="Why ?refresh=1 could not fetch this host (null otherwise)."
    )

    def get_fields(self):
        fields = super().get_fields()
        first = ("name", "state", "polled_at")
        return {**{name: fields.pop(name) for name in first}, **fields}


class FleetTotalsSerializer(CountsSerializer):
    """The fleet's counts: connections, attempts and logins summed over the hosts (each happened
    on one host); unique_sources counted distinct over them all (never a sum)."""

    unique_sources = serializers.IntegerField(min_value=0, help_text=DISTINCT_MEANING)
    unique_sources_lower_bound = serializers.BooleanField(help_text=LOWER_BOUND_MEANING)


class FleetDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    hosts = FleetHostSerializer(many=True, help_text="Every host, by name.")
    totals = FleetTotalsSerializer()


class FleetRangeDaySerializer(FleetTotalsSerializer):
    date = serializers.DateField()
    hosts = serializers.IntegerField(min_value=0, help_text="Hosts with counts stored for the day.")

    def get_fields(self):
        fields = super().get_fields()
        return {"date": fields.pop("date"), "hosts": fields.pop("hosts"), **fields}


class FleetRangeSerializer(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField()
    days = FleetRangeDaySerializer(
        many=True,
        help_text="Every day from since through until, in date order; a day no host stored counts for "
        "(no connections anywhere, or nothing polled yet) is zeros with hosts 0.",
    )


class FleetSourceSerializer(serializers.Serializer):
    ip = serializers.CharField()
    hosts = serializers.IntegerField(min_value=1, help_text="How many hosts saw the address that day.")
    host_names = serializers.ListField(child=serializers.CharField())
    sessions = serializers.IntegerField(min_value=0)
    failed_attempts = serializers.IntegerField(min_value=0)
    accepted = serializers.IntegerField(min_value=0)
    flagged = serializers.BooleanField(help_text=FLAGGED_MEANING)


class FleetLoginSerializer(AcceptedLoginSerializer):
    """A login as its agent served it (collector's AcceptedLoginSerializer), with its host and
    whether it came after failures."""

    host = serializers.CharField(source="host_name", help_text="The host it logged in to.")
    after_failures = serializers.BooleanField(help_text=AFTER_FAILURES_MEANING)

    class Meta(AcceptedLoginSerializer.Meta):
        model = HostLogin
        fields = ["host", *AcceptedLoginSerializer.Meta.fields, "after_failures"]
