"""ASGI entry point: the agent API under gunicorn's asyncio worker (`-k asgi`), where a slow or
idle client costs a coroutine, not one of the few worker processes."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alphaproject.settings")

application = get_asgi_application()
