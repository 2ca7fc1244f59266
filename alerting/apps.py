from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AlertingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "alerting"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from inventory_app.signals import poller_waiting, round_dispatched, round_finished

        from . import receivers

        post_migrate.connect(receivers.after_migrate, sender=self)
        round_finished.connect(receivers.evaluate_and_deliver, dispatch_uid="alerting.after_round")
        poller_waiting.connect(receivers.deliver_retries, dispatch_uid="alerting.while_waiting")
        round_dispatched.connect(receivers.schedule_evaluation, dispatch_uid="alerting.after_celery_round")
