from __future__ import annotations

# The Celery app lives in alphaproject.celery and is imported by the tasks that use it (and by
# `celery -A alphaproject`), not here: an agent process need not load Celery at all.
__version__ = "0.2.0"
