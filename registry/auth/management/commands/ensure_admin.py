"""``manage.py ensure_admin``: create the superuser named by CROW_ADMIN_USER / CROW_ADMIN_PASSWORD.

Without them it only says how to create the first administrator; it never
changes an existing user (and so never resets a password someone changed).
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry.auth.accounts import ensure_admin


class Command(BaseCommand):
    help = "Create the superuser CROW_ADMIN_USER with CROW_ADMIN_PASSWORD if it does not exist yet."

    def handle(self, *args: Any, **options: Any) -> None:
        username, password = settings.CROW_ADMIN_USER, settings.CROW_ADMIN_PASSWORD
        if not username:
            if options["verbosity"] >= 1:
                self.stdout.write(
                    "No administrator configured. Create one with "
                    "`.venv/bin/python manage.py createsuperuser`, "
                    "or set CROW_ADMIN_USER and CROW_ADMIN_PASSWORD (see README)."
                )
            return
        if not password:
            raise CommandError(
                "CROW_ADMIN_USER is set but CROW_ADMIN_PASSWORD (or CROW_ADMIN_PASSWORD_FILE) is not"
            )
        report = ensure_admin(username, password)
        if options["verbosity"] >= 1:
            if report.created:
                self.stdout.write(self.style.SUCCESS(f"Created the administrator {report.username!r}."))
            else:
                self.stdout.write(f"The user {report.username!r} exists already; left unchanged.")
