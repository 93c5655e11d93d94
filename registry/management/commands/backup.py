"""``manage.py backup DEST``: a consistent, incremental backup, taken while the registry serves.

The work is ``registry.backup``'s. Exit status: 0 backed up; 1 failed (DEST
unwritable, full or unreachable, a blob unreadable or corrupt in the store),
and DEST then holds no new backup.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import progress
from registry.backup import BackupError, backup


class Command(BaseCommand):
    help = (
        "Back up every repository, manifest, tag, blob, user, grant and robot to DEST, an OCI image layout"
        " plus crow-backup.json; blobs DEST has already are not copied again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("destination", metavar="DEST", help="a directory, or s3://bucket/prefix")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="after a successful backup, delete the blobs in DEST that only older backups needed",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        watcher = progress.for_command(self, verbosity, notes=verbosity >= 2)
        try:
            report = backup(options["destination"], prune=options["prune"], progress=watcher)
        except BackupError as exc:
            raise CommandError(f"backup failed: {exc}") from None
        if verbosity >= 1:
            self.stdout.write(report.summary())
