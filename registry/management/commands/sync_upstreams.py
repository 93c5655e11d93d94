"""``manage.py sync_upstreams``: write the upstreams of CROW_UPSTREAMS into the Upstream table.

``python -m crow.start`` runs it after the migrations; run it by hand where
migrations run apart (a fleet). Rows created in the admin or the API are left
alone; see ``registry.mirror.environment``.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from registry.management.migrations_state import require_migrated
from registry.mirror import environment


class Command(BaseCommand):
    help = "Create or update the pull-through cache's upstreams from CROW_UPSTREAMS (the environment wins)."

    def handle(self, *args: Any, **options: Any) -> None:
        require_migrated("sync_upstreams")
        try:
            report = environment.sync(settings.CROW_UPSTREAMS)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        summary = report.summary()
        if summary and options["verbosity"] >= 1:
            self.stdout.write(summary)
