"""Fixtures shared by the apps' tests."""

from __future__ import annotations

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections


@pytest.fixture
def wsgi_in_test_transaction():
    """For tests that call the WSGI application itself (schemathesis): the handler closes the
    database connection after each request, which inside a test's transaction would close it
    under the test (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
