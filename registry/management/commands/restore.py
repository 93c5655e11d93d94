"""``manage.py restore SRC``: rebuild the registry from a backup, after verifying it (``registry.backup``).

Exit status: 0 restored; 1 failed part way (nothing kept); 3 the backup is
incomplete or damaged (nothing changed); 4 the installation is not empty and
``--merge`` was not given (nothing changed); 75 (sysexits' EX_TEMPFAIL) a gc
is running, or the registry is read-only (``manage.py read_only``) and ``--force`` was not
given: run restore once it has ended (nothing changed).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import progress
from registry.backup import accounts
from registry.backup.restore import RestoreError, RestoreRefused, restore
from registry.locks import EX_TEMPFAIL
from registry.maintenance import readonly
from registry.management.migrations_state import require_migrated


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` into an empty installation (or, with --merge, add"
        " what is missing). Every blob is verified first; a damaged backup changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", metavar="SRC", help="a backup directory, or s3://bucket/prefix")
        parser.add_argument(
            "--merge",
            action="store_true",
            help="restore into a non-empty installation: add what is missing, keep every existing row"
            " (a tag that exists keeps pointing where it does)",
        )
        parser.add_argument(
            "--force", action="store_true", help="run even while the registry is read-only (a maintenance)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        require_migrated("restore")
        refused = None if options["force"] else readonly.refusal("restore")
        if refused:
            raise CommandError(refused, returncode=EX_TEMPFAIL)
        verbosity = options["verbosity"]
        watcher = progress.for_command(self, verbosity, notes=verbosity >= 2)
        try:
            report = restore(options["source"], merge=options["merge"], progress=watcher)
        except RestoreRefused as exc:
            raise CommandError(f"restore refused: {exc}", returncode=exc.exit_code) from None
        except RestoreError as exc:
            raise CommandError(f"restore failed: {exc}") from None
        if verbosity >= 1:
            for note in report.notes:
                self.stdout.write(note)
            self.stdout.write(accounts.LEFT_OUT)
            self.stdout.write(report.summary())
