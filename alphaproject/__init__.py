from __future__ import annotations

# Load the Celery app with Django so that shared tasks use it.
from .celery import app as celery_app

__version__ = "0.2.0"
__all__ = ["__version__", "celery_app"]
