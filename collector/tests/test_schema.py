"""Schema-driven fuzzing of the agent API (schemathesis): no 500s, no response off the schema."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from alphaproject.wsgi import application
from collector.models import AgentState, DailyCount, DailySource, DailyUser, LogSource

TOKEN = "fuzz-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api_schema(db, settings, wsgi_in_test_transaction):
    settings.ALPHA_AGENT_TOKEN = TOKEN
    day = date(2026, 3, 2)
    seen = datetime(2026, 3, 2, 12, tzinfo=UTC)
    DailyCount.objects.create(
        day=day, sessions=5, accepted=1, failed_attempts=9, failed_sessions=3, preauth_only=1
    )
    DailySource.objects.create(day=day, ip="198.51.100.1", sessions=5, failed_attempts=9, accepted=1,
                               first_seen=seen, last_seen=seen, users=["root", "<b>x</b>"])  # fmt: skip
    DailyUser.objects.create(day=day, user="root", sessions=5, failed_attempts=9, accepted=1)
    source = LogSource.objects.create(path="/var/log/auth.log", inode=1, device=1, offset=10, lines_read=3)
    AgentState.objects.update_or_create(pk=1, defaults={"followed": [source.pk]})  # health lists it
    return schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application, headers=AUTH)


def test_it_answers_every_generated_request_within_the_schema(api_schema):
    # Each operation gets its own Hypothesis run: valid and invalid paths and query strings.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 5
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            # since <= until and the 400-day limit span two fields, which OpenAPI cannot say:
            # a schema-valid range may get a documented 400, every other check applies.
            case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

        check()
