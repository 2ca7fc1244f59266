"""The alerts API's shapes: validated input and the output contract (keep these names)."""

from __future__ import annotations

from rest_framework import serializers

from inventory_app.models import host_name_validator

from .models import ALERT_STATES, DELIVERY_STATES, SEVERITIES
from .rules import REGISTRY


class AlertListParamSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=ALERT_STATES, required=False, help_text="open or acknowledged.")
    rule = serializers.ChoiceField(
        choices=sorted(REGISTRY), required=False, help_text="A rule kind, e.g. brute_force."
    )
    host = serializers.CharField(
        required=False, max_length=100, validators=[host_name_validator], help_text="Alerts naming this host."
    )


class DeliverySerializer(serializers.Serializer):
    channel = serializers.CharField(source="channel.name")
    kind = serializers.CharField(source="channel.kind")
    state = serializers.ChoiceField(choices=DELIVERY_STATES)
    attempts = serializers.IntegerField(min_value=0)
    next_attempt_at = serializers.DateTimeField(help_text="When a pending delivery is tried next.")
    last_error = serializers.CharField(allow_blank=True)
    sent_at = serializers.DateTimeField(allow_null=True)


class AlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.CharField(source="rule.kind")
    rule_name = serializers.CharField(source="rule.__str__")
    key = serializers.CharField(
        help_text="What alerts are grouped by: an address, a user, a host and problem."
    )
    severity = serializers.ChoiceField(choices=SEVERITIES)
    summary = serializers.CharField(help_text="One sentence; may hold attacker text (user names).")
    address = serializers.CharField(allow_blank=True, help_text="Attacker-controlled text when set.")
    user = serializers.CharField(allow_blank=True, help_text="Attacker-controlled text when set.")
    hosts = serializers.ListField(child=serializers.CharField(), source="host_list")
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    count = serializers.IntegerField(
        min_value=1, help_text="Times the rule found new activity in this campaign."
    )
    state = serializers.ChoiceField(choices=ALERT_STATES)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.get_username", allow_null=True, default=None
    )
    url = serializers.CharField(source="public_url", help_text="The dashboard page that shows the alert.")
    deliveries = DeliverySerializer(many=True)
