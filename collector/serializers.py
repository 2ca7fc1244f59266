"""The agent API's shapes: validated input, and the output contract (keep these names)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from .models import DailySource

MAX_RANGE_DAYS = 400


class DayParamSerializer(serializers.Serializer):
    date = serializers.DateField(input_formats=["%Y-%m-%d"])


class RangeParamSerializer(serializers.Serializer):
    since = serializers.DateField(
        input_formats=["%Y-%m-%d"],
        required=False,
        help_text=f"First day; default: until - 29 days. At most {MAX_RANGE_DAYS} days from since to until "
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
        until = data.get("until") or timezone.localdate()
        try:
            since = data.get("since") or until - timedelta(days=29)
        except OverflowError:  # until in the first days of year 1
            raise serializers.ValidationError(
                "until is too early for the default range; give since."
            ) from None
        if since > until:
            raise serializers.ValidationError("since must not be after until.")
        if (until - since).days + 1 > MAX_RANGE_DAYS:
            raise serializers.ValidationError(f"The range may cover at most {MAX_RANGE_DAYS} days.")
        return {"since": since, "until": until}


class DayCountsSerializer(serializers.Serializer):
    date = serializers.DateField()
    sessions = serializers.IntegerField(min_value=0)
    accepted = serializers.IntegerField(min_value=0)
    failed_attempts = serializers.IntegerField(min_value=0)
    failed_sessions = serializers.IntegerField(min_value=0)
    invalid_user_sessions = serializers.IntegerField(min_value=0)
    preauth_only = serializers.IntegerField(min_value=0)
    unique_sources = serializers.IntegerField(min_value=0)


class TopSourceSerializer(serializers.Serializer):
    ip = serializers.CharField()
    sessions = serializers.IntegerField()
    failed_attempts = serializers.IntegerField()
    accepted = serializers.IntegerField()


class TopUserSerializer(serializers.Serializer):
    user = serializers.CharField()
    sessions = serializers.IntegerField()
    failed_attempts = serializers.IntegerField()
    accepted = serializers.IntegerField()


class DayDetailSerializer(DayCountsSerializer):
    host = serializers.CharField()
    top_sources = TopSourceSerializer(many=True)
    top_users = TopUserSerializer(many=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        return {"host": data.pop("host"), **data}  # the documented order: host, date, counts


class DayRangeSerializer(serializers.Serializer):
    host = serializers.CharField()
    days = DayCountsSerializer(many=True)


class SourceSerializer(serializers.ModelSerializer):
    users = serializers.ListField(
        child=serializers.CharField(), help_text="Distinct user names tried (at most 20)."
    )

    class Meta:
        model = DailySource
        fields = ["ip", "sessions", "failed_attempts", "accepted", "users", "first_seen", "last_seen"]


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
    sources = SourceHealthSerializer(many=True)
