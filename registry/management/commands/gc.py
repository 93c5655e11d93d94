"""``manage.py gc [--untagged] [--dry-run]``: delete what nothing references, while the registry serves.

Exit status: 0 done; 1 some deletions failed (a later run retries them); 75
(sysexits' EX_TEMPFAIL: run it again later) another gc or a restore is
running, or backups ran for longer than ``--wait``, so no blob was deleted, or the registry
is read-only (``manage.py read_only``) and neither ``--force`` nor ``--dry-run`` was given.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crow.env import parse_duration
from registry import locks, progress
from registry.gc import collect as gc
from registry.maintenance import readonly
from registry.management.migrations_state import require_migrated
from registry.models import Repository


class Command(BaseCommand):
    help = (
        "Garbage collection: tags that retention rules expire, mirrored images unused for their"
        " upstream's unused days, untagged manifests (--untagged),"
        " blobs no manifest references, and stored objects the database does not know."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would go, with sizes; change nothing"
        )
        parser.add_argument(
            "--untagged",
            action="store_true",
            help="also delete manifests no tag references, except children of kept indexes"
            " and referrers of kept manifests",
        )
        parser.add_argument(
            "--delete-referrers",
            action="store_true",
            help="with --untagged: delete untagged referrers (signatures, SBOMs)"
            " even when their subject is kept",
        )
        parser.add_argument(
            "--repository",
            metavar="NAME",
            help="only this repository's tags and manifests, and blobs linked into it"
            " (still only those no manifest anywhere references); no storage sweep",
        )
        parser.add_argument(
            "--grace-period",
            metavar="DURATION",
            help="keep what is younger than this (90s, 15m, 6h, 7d; 0 for none)"
            " (default: CROW_GC_GRACE_PERIOD, now %(default)s)",
            default=f"{settings.CROW_GC_GRACE_PERIOD}s",
        )
        parser.add_argument(
            "--wait",
            metavar="DURATION",
            help="before deleting blobs, wait this long at most for running backups to end"
            " (they need every blob their snapshot names); after that, delete no blob this time"
            " and exit with status 75 (default: %(default)s)",
            default=f"{locks.DEFAULT_WAIT // timedelta(hours=1)}h",
        )
        parser.add_argument(
            "--force", action="store_true", help="run even while the registry is read-only (a maintenance)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        require_migrated("gc")
        refused = None if options["force"] or options["dry_run"] else readonly.refusal("gc")
        if refused:
            raise CommandError(refused, returncode=locks.EX_TEMPFAIL)
        try:
            grace = parse_duration(options["grace_period"], "--grace-period")
            wait = parse_duration(options["wait"], "--wait")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if options["delete_referrers"] and not options["untagged"]:
            raise CommandError("--delete-referrers goes with --untagged")
        name = options["repository"]
        if name is not None and not Repository.objects.filter(name=name).exists():
            raise CommandError(f"there is no repository {name!r}")
        dry_run, verbosity = options["dry_run"], options["verbosity"]
        watcher = progress.for_command(self, verbosity, notes=verbosity >= 2 or (dry_run and verbosity >= 1))
        gc_options = gc.GcOptions(
            grace_period=timedelta(seconds=grace),
            dry_run=dry_run,
            untagged=options["untagged"],
            delete_referrers=options["delete_referrers"],
            repository=name,
            wait=timedelta(seconds=wait),
        )
        try:
            report = gc.collect(gc_options, watcher)
        except gc.GcBusy as exc:
            raise CommandError(f"{exc}; try again later", returncode=locks.EX_TEMPFAIL) from None
        for failure in report.failed:
            self.stderr.write(failure)
        if verbosity >= 1:
            self.stdout.write(report.summary(dry_run))
        if report.failed:
            raise CommandError(f"{len(report.failed)} failures; a later gc retries them")
        if report.deferred:
            raise CommandError(report.deferred, returncode=locks.EX_TEMPFAIL)
