"""``manage.py purge_uploads --older-than 24h``: abort upload sessions that clients abandoned."""

from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crow.env import parse_duration
from registry.gc.purge import purge_uploads
from registry.management.migrations_state import require_migrated


class Command(BaseCommand):
    help = "Abort upload sessions untouched for a while: delete their temp files or multipart uploads."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            default="24h",
            help="untouched for at least this long (90s, 15m, 6h, 7d; default 24h)",
        )
        parser.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        require_migrated("purge_uploads")
        try:
            older_than = parse_duration(options["older_than"], "--older-than")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        verbose = options["verbosity"] >= 2

        def show(upload: Any) -> None:
            if verbose:
                self.stdout.write(
                    f"{upload.repository.name} {upload.id.hex} {upload.offset} bytes {upload.updated}"
                )

        report = purge_uploads(timedelta(seconds=older_than), dry_run=options["dry_run"], progress=show)
        if options["verbosity"] >= 1:
            self.stdout.write(report.summary(options["dry_run"]))
        if report.failed:
            raise CommandError(
                f"{len(report.failed)} uploads could not be purged: {', '.join(report.failed)}"
            )
