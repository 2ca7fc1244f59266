"""The dashboard's query parameters: a date range (?since=&until=) and, on a host, a day (?day=);
the alerts' and the logins' filters.

Bad input never becomes a 500: the form carries a message, and the page falls back to the
default range (see views.valid_range). The range rule is the APIs' (collector.contract).
"""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.utils import timezone

from collector.contract import MAX_ADDRESS_LENGTH, MAX_USER_LENGTH, RangeError, date_range
from inventory_app.models import host_name_validator

DEFAULT_DAYS = 14
DATE_FORMATS = ["%Y-%m-%d"]


def default_range(today: date | None = None) -> tuple[date, date]:
    until = today or timezone.localdate()
    return until - timedelta(days=DEFAULT_DAYS - 1), until


class RangeForm(forms.Form):
    # Days shown when neither since nor until is given (or only until).
    default_days = DEFAULT_DAYS

    since = forms.DateField(input_formats=DATE_FORMATS, required=False)
    until = forms.DateField(input_formats=DATE_FORMATS, required=False)

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        try:
            since, until = date_range(
                data.get("since"), data.get("until"), timezone.localdate(), self.default_days
            )
        except RangeError as exc:
            raise forms.ValidationError(str(exc)) from None
        data.update(since=since, until=until)
        return data

    def message(self) -> str:
        """The errors as one sentence a person can act on (field errors name their field)."""
        parts = []
        for field, errors in self.errors.items():
            prefix = "" if field == NON_FIELD_ERRORS else f"{field}: "
            parts.extend(f"{prefix}{error}" for error in errors)
        return " ".join(parts)


class HostRangeForm(RangeForm):
    day = forms.DateField(input_formats=DATE_FORMATS, required=False)


class AlertFilterForm(forms.Form):
    """The alerts page's filters (?state=&rule=&host=, ?alert=<id> for one alert, ?page=)."""

    state = forms.ChoiceField(required=False)
    rule = forms.ChoiceField(required=False)
    host = forms.RegexField(regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", required=False)
    alert = forms.IntegerField(required=False, min_value=1, max_value=2**62)
    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)

    def __init__(self, *args, **kwargs):
        from alerting.models import ALERT_STATES
        from alerting.rules import REGISTRY

        super().__init__(*args, **kwargs)
        self.fields["state"].choices = [("", "any state"), *ALERT_STATES]
        self.fields["rule"].choices = [("", "any rule"), *((k, r.name) for k, r in REGISTRY.items())]

    def message(self) -> str:
        return " ".join(f"{name}: {' '.join(errors)}" for name, errors in self.errors.items())


class LoginFilterForm(RangeForm):
    """The logins page's filters: the days (default today), exact user, address, host and method
    (empty: any), and ?page=. Django's CharField refuses NUL characters, which PostgreSQL would."""

    default_days = 1

    user = forms.CharField(required=False, max_length=MAX_USER_LENGTH, strip=False)
    ip = forms.CharField(required=False, max_length=MAX_ADDRESS_LENGTH)
    host = forms.CharField(required=False, max_length=100, validators=[host_name_validator])
    method = forms.RegexField(
        regex=r"^[A-Za-z0-9@/._-]{1,64}$",
        required=False,
        error_messages={
            "invalid": "Not an sshd method (publickey, password, keyboard-interactive/pam, ...)."
        },
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
