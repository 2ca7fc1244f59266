import os

from django.apps import AppConfig


class CollectorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "collector"
    verbose_name = "SSH log collector (agent)"
    # The package's own folder: with a compiled build (speedups.py), __path__ has two.
    path = os.path.dirname(os.path.abspath(__file__))
