"""Settings for the test suite: the real settings, with a key so no environment is needed."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-key-not-secret")

from .settings import *  # noqa: E402,F403

# Static files straight from the apps, without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
