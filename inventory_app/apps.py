from __future__ import annotations

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate, pre_delete


class InventoryAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inventory_app"
    verbose_name = "Inventory"

    def ready(self) -> None:
        from collector.retention import pruning

        from .models import Host, forget_deleted_host
        from .retention import prune_central

        pruning.connect(prune_central, dispatch_uid="inventory_app.prune_central")
        pre_delete.connect(forget_deleted_host, sender=Host, dispatch_uid="inventory_app.forget_deleted_host")
        if apps.is_installed("django_celery_beat"):
            post_migrate.connect(create_poll_schedule, sender=self)


def create_poll_schedule(sender, using: str, verbosity: int = 1, **kwargs) -> None:
    """After migrate (and test flushes), make sure beat has its "Poll all hosts" task."""
    try:
        # The migration state, not the app registry: `migrate inventory_app` on a new database
        # leaves django_celery_beat's tables uncreated.
        kwargs.get("apps", apps).get_model("django_celery_beat", "PeriodicTask")
    except LookupError:
        return
    from .schedule import ensure_poll_schedule, ensure_prune_schedule

    for ensure in (ensure_poll_schedule, ensure_prune_schedule):
        task, created = ensure(using=using)
        if created and verbosity >= 2:
            print(f"Created the periodic task {task.name!r} ({task.interval}).")
