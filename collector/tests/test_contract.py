"""The contract (collector/contract.py) is the one list of counts and limits: the models, the
schemas and the README follow it."""

from __future__ import annotations

import re
import unittest
from datetime import date

from django.test import SimpleTestCase, override_settings
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from collector import contract
from collector.models import AddressCounts, DailyCount, DailySource, DayCounts
from collector.tests.helpers import ROOT
from inventory_app.models import HostDay, HostSource


def field_names(model) -> list[str]:
    return [f.name for f in model._meta.get_fields() if getattr(f, "concrete", False)]


class ContractTests(SimpleTestCase):
    def test_the_count_models_have_the_contracts_fields(self):
        # Adding a count to the contract without a model field (or the other way) fails here.
        counts = [name for name in field_names(DayCounts) if name not in ("id",)]
        self.assertEqual(counts, list(contract.TALLIED))
        for model in (DailyCount, HostDay):
            self.assertLessEqual(set(contract.TALLIED), set(field_names(model)), model)
        self.assertIn("unique_sources", field_names(HostDay))  # stored centrally, counted on the agent
        for model in (AddressCounts, DailySource, HostSource):
            self.assertLessEqual(set(contract.ADDRESS_COUNT_NAMES), set(field_names(model)), model)
        self.assertEqual(DailySource._meta.get_field("ip").max_length, contract.MAX_ADDRESS_LENGTH)

    def test_the_readme_table_says_what_the_contract_says(self):
        readme = (ROOT / "README.md").read_text()
        rows = re.findall(r"^\| `(\w+)` \| (.+?) \|$", readme.split("## What the agent counts", 1)[1], re.M)
        self.assertEqual(rows[: len(contract.COUNTS)], [(c.name, c.meaning) for c in contract.COUNTS])

    def test_the_schemas_explain_every_count(self):
        from drf_spectacular.generators import SchemaGenerator

        schema = SchemaGenerator().get_schema(request=None, public=True)
        day = schema["components"]["schemas"]["DayCounts"]["properties"]
        self.assertEqual(list(day), ["date", *contract.COUNT_NAMES])
        for count in contract.COUNTS:
            self.assertEqual(day[count.name]["description"], count.meaning)


class DateRangeTests(unittest.TestCase):
    TODAY = date(2026, 3, 31)

    def test_it_defaults_and_bounds_a_range(self):
        self.assertEqual(contract.date_range(None, None, self.TODAY), (date(2026, 3, 2), self.TODAY))
        self.assertEqual(contract.date_range(None, None, self.TODAY, 14), (date(2026, 3, 18), self.TODAY))
        since = date(2025, 2, 25)  # exactly 400 days
        self.assertEqual(contract.date_range(since, None, self.TODAY), (since, self.TODAY))
        for since, until, problem in [
            (date(2026, 4, 1), None, "since must not be after until."),
            (date(2025, 2, 24), None, "The range may cover at most 400 days."),
            (None, date(1, 1, 2), "until is too early for the default range; give since."),
        ]:
            with self.subTest(problem), self.assertRaisesRegex(contract.RangeError, re.escape(problem)):
                contract.date_range(since, until, self.TODAY)


class DefaultDenyTests(SimpleTestCase):
    @override_settings(ALPHA_AGENT_TOKEN="deny-token-0123456789")
    def test_a_view_that_declares_nobody_lets_nobody_in(self):
        # A central endpoint that forgot CentralView must not fall open to the agent's token.
        class Forgetful(APIView):
            def get(self, request):
                return None

        request = APIRequestFactory().get("/", HTTP_AUTHORIZATION="Bearer deny-token-0123456789")
        self.assertIn(Forgetful.as_view()(request).status_code, (401, 403))
