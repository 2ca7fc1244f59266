#!/usr/bin/env python
"""Django's command-line utility for Alpha."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alphaproject.settings")
    # Databases, tokens and logs this process creates are its user's alone.
    os.umask(0o077)
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import DatabaseError

    try:
        # Django keeps a settings error to itself until a command needs settings, and some
        # (makemigrations) then fail with "Models aren't loaded yet" and a traceback instead.
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - loads the settings module
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A setting a user can fix: say which, without a traceback.
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(2)
    except DatabaseError as exc:
        # A command that met a database it cannot use (down, wrong URL, not migrated).
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(
            f"The database failed ({detail[:200]}); check DATABASE_URL and run 'manage.py migrate'.\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
