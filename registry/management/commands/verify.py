"""``manage.py verify [--repository NAME] [--sample N]``: re-read stored blobs, check size and digest."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import progress
from registry.gc.verify import verify
from registry.management.migrations_state import require_migrated
from registry.models import Repository


class Command(BaseCommand):
    help = (
        "Read every stored blob back (or a repository's, or a random sample) and check its size and digest."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repository", metavar="NAME", help="only the blobs of this repository")
        parser.add_argument("--sample", metavar="N", type=int, help="only N blobs chosen at random")

    def handle(self, *args: Any, **options: Any) -> None:
        require_migrated("verify")
        name, sample, verbosity = options["repository"], options["sample"], options["verbosity"]
        if sample is not None and sample < 1:
            raise CommandError("--sample must be at least 1")
        if name is not None and not Repository.objects.filter(name=name).exists():
            raise CommandError(f"there is no repository {name!r}")
        # Problems are always listed (on stdout): they are what the command is for.
        report = verify(name, sample, progress.for_command(self, verbosity, notes=False))
        for problem in report.problems:
            self.stdout.write(str(problem))
        if verbosity >= 1:
            self.stdout.write(report.summary())
        if report.problems:
            raise CommandError(f"{len(report.problems)} blobs are missing, corrupt or unreadable")
