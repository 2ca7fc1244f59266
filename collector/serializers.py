"""The agent API's shapes: validated input, and the output contract (collector/contract.py names
and explains every count; the central API reuses these)."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from .contract import (
    ADDRESS_COUNTS,
    COUNTS,
    MAX_RANGE_DAYS,
    MAX_USERS_PER_SOURCE,
    RANGE_DAYS,
    RangeError,
    date_range,
)
from .models import AcceptedLogin, DailySource


class DayParamSerializer(serializers.Serializer):
    date = serializers.DateField(input_formats=["%Y-%m-%d"])


class RangeParamSerializer(serializers.Serializer):
    since = serializers.DateField(
        input_formats=["%Y-%m-%d"],
        required=False,
        help_text=f"First day; default: until - {RANGE_DAYS - 1} days. At most {MAX_RANGE_DAYS} days from since to until "
        "(400 otherwise).",
    )
    until = serializers.DateField(
        input_formats=["%Y-%m-%d"], required=False, help_text="Last day; default: today."
    )

    def to_internal_value(self, data):
        # DRF takes `until=` (empty) for "not given"; the schema says a date, so it is bad input.
        blank = [name for name in ("since", "until") if name in data and not str(data.get(name)).strip()]
        if blank:
            raise serializers.ValidationError(
                {name: "Give a date like 2026-03-01, or leave it out." for name in blank}
            )
        return super().to_internal_value(data)

    def validate(self, data: dict) -> dict:
        try:
            since, until = date_range(data.get("since"), data.get("until"), timezone.localdate())
        except RangeError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return {"since": since, "until": until}


def count_fields(counts, minimum: int | None = 0) -> dict[str, serializers.Field]:
    """One integer field per count of the contract, its meaning as the help text."""
    return {c.name: serializers.IntegerField(min_value=minimum, help_text=c.meaning) for c in counts}


# A day's counts, as the contract names and orders them (the central API's host and fleet
# rows are these too).
CountsSerializer = type(
    "CountsSerializer", (serializers.Serializer,), {"__module__": __name__, **count_fields(COUNTS)}
)


class DayCountsSerializer(CountsSerializer):
    date = serializers.DateField()

    def get_fields(self):
        fields = super().get_fields()
        return {"date": fields.pop("date"), **fields}  # the documented order: date, then counts


TopSourceSerializer = type(
    "TopSourceSerializer",
    (serializers.Serializer,),
    {"__module__": __name__, "ip": serializers.CharField(), **count_fields(ADDRESS_COUNTS, minimum=None)},
)
TopUserSerializer = type(
    "TopUserSerializer",
    (serializers.Serializer,),
    {"__module__": __name__, "user": serializers.CharField(), **count_fields(ADDRESS_COUNTS, minimum=None)},
)


class DayDetailSerializer(DayCountsSerializer):
    host = serializers.CharField()
    top_sources = TopSourceSerializer(many=True)
    top_users = TopUserSerializer(many=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        return {"host": data.pop("host"), **data}  # the documented order: host, date, counts


class DayRangeSerializer(serializers.Serializer):
    host = serializers.CharField()
    days = DayCountsSerializer(
        many=True,
        help_text="Every day from since through until, in date order; a day without connections is "
        "listed with zeros, as /api/v1/logins/{day}/ answers it.",
    )


class SourceSerializer(serializers.ModelSerializer):
    users = serializers.ListField(
        child=serializers.CharField(),
        help_text=f"Distinct user names tried (at most {MAX_USERS_PER_SOURCE}).",
    )

    class Meta:
        model = DailySource
        fields = ["ip", "sessions", "failed_attempts", "accepted", "users", "first_seen", "last_seen",
                  "first_failed", "last_failed", "first_accepted"]  # fmt: skip
        extra_kwargs = {
            "ip": {"help_text": "The address sshd wrote; a host name (from PAM) only where it wrote none."},
            "first_failed": {"help_text": "First failed attempt from it that day; null if none."},
            "last_failed": {"help_text": "Last failed attempt from it that day; null if none."},
            "first_accepted": {"help_text": "First login from it that day; null if none."},
        }


class AcceptedLoginSerializer(serializers.ModelSerializer):
    class Meta:
        model = AcceptedLogin
        fields = ["at", "user", "ip", "port", "method", "key", "ended_at"]
        extra_kwargs = {
            "at": {"help_text": "When sshd accepted it."},
            "user": {
                "help_text": "The user name that logged in (attacker-controlled text: treat it as data)."
            },
            "ip": {"help_text": "The source address sshd wrote."},
            "port": {"help_text": "The client's source port; null if sshd did not write one."},
            "method": {"help_text": "publickey, password, keyboard-interactive/pam, …"},
            "key": {
                "help_text": 'Key type and fingerprint ("ED25519 SHA256:…") when sshd logs it; else empty.'
            },
            "ended_at": {
                "help_text": "When the connection ended; null while it lasts or if its end was not logged."
            },
        }


class UnknownSampleSerializer(serializers.Serializer):
    seen_at = serializers.DateTimeField()
    message = serializers.CharField()


class SourceHealthSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["file", "journal"])
    path = serializers.CharField()
    inode = serializers.IntegerField(allow_null=True)
    offset = serializers.IntegerField()
    file_size = serializers.IntegerField(allow_null=True)
    unread_bytes = serializers.IntegerField(allow_null=True)
    cursor = serializers.CharField(allow_blank=True)
    last_read_at = serializers.DateTimeField(allow_null=True)
    last_event_at = serializers.DateTimeField(allow_null=True)
    seconds_since_last_event = serializers.IntegerField(allow_null=True)
    lines_read = serializers.IntegerField()
    malformed_lines = serializers.IntegerField()
    unknown_last_24h = serializers.IntegerField()
    unknown_samples = UnknownSampleSerializer(many=True)


class HealthSerializer(serializers.Serializer):
    host = serializers.CharField()
    agent_version = serializers.CharField()
    time_zone = serializers.CharField()
    now = serializers.DateTimeField()
    heartbeat_at = serializers.DateTimeField(allow_null=True, help_text="Last sign of life of watch_authlog.")
    following = serializers.BooleanField(help_text="watch_authlog gave a sign of life in the last 3 minutes.")
    source_problem = serializers.CharField(
        allow_null=True,
        help_text="Why watch_authlog has no sshd log to follow (none exists, or none is readable); null when it has.",
    )
    sources = SourceHealthSerializer(
        many=True,
        help_text="The log sources watch_authlog follows: the live file at each path, or the journal.",
    )
