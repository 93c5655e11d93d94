"""``manage.py backup DEST``: a consistent, incremental backup, taken while the registry serves.

The work is ``registry.backup.snapshot``'s. Exit status: 0 backed up; 1 failed (DEST
unwritable, full or unreachable, a blob unreadable or corrupt in the store);
75 (sysexits' EX_TEMPFAIL: run it again later) a gc was deleting blobs for
longer than ``--wait``. Unless 0, DEST holds no new backup.
"""

from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crow.env import parse_duration
from registry import locks, progress
from registry.backup import accounts
from registry.backup.snapshot import BackupError, backup
from registry.management.migrations_state import require_migrated


class Command(BaseCommand):
    help = (
        "Back up every repository, manifest, tag, blob, user, grant and robot to DEST, an OCI image layout"
        " plus crow-backup.json; blobs DEST has already are not copied again. Not backed up: API tokens,"
        " webhooks, pull-through upstreams (secrets), the audit log and webhook deliveries."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("destination", metavar="DEST", help="a directory, or s3://bucket/prefix")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="after a successful backup, delete the blobs in DEST that only older backups needed",
        )
        parser.add_argument(
            "--wait",
            metavar="DURATION",
            help="if a gc is deleting blobs, wait this long at most for it to finish, then give up"
            " with status 75 (default: %(default)s)",
            default=f"{locks.DEFAULT_WAIT // timedelta(hours=1)}h",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        require_migrated("backup")
        try:
            wait = timedelta(seconds=parse_duration(options["wait"], "--wait"))
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        verbosity = options["verbosity"]
        watcher = progress.for_command(self, verbosity, notes=verbosity >= 2)
        try:
            report = backup(options["destination"], prune=options["prune"], progress=watcher, wait=wait)
        except BackupError as exc:
            raise CommandError(f"backup failed: {exc}", returncode=exc.exit_code) from None
        if verbosity >= 1:
            self.stdout.write(accounts.left_out())
            self.stdout.write(report.summary())
