"""Online garbage collection (``manage.py gc``), safe while the registry serves pushes.

One run, under a lock that one run at a time holds, goes through four phases:

1. *Retention*: the tags that retention rules expire go (``registry.gc.retention``), and
   every tag of a mirrored repository nobody pulled for its upstream's ``unused_days``
   (``registry.gc.mirrored``), whose manifests then go in phase 2 whatever the options.
2. *Manifests* (``--untagged``, or a rule's ``untagged_after_days``): in each
   repository, a manifest is kept when a tag names it, when a kept index lists
   it (transitively), when its subject is kept (a referrer: signatures, SBOMs;
   unless ``delete_referrers``), or when it is younger than the limit. The mark
   runs over all repositories at once, from the untagged manifests' side, so
   its cost follows them, not the number of repositories or tags. The rest
   go parents and subjects first, in batches, each re-checked under row locks
   that nothing references it now (``registry.gc.untagged``). A manifest takes its
   own outgoing reference rows with it, never what they reference.
3. *Blobs*: a blob goes when no manifest in any repository references it
   (an absent reference of a sparse manifest, ``registry.sparse``, counts: the
   blob arrived after the manifest) and neither it nor any of its links is
   younger than the grace period. The
   database decides, then storage follows: in one transaction per batch, the
   rows are locked (``SKIP LOCKED``: a blob someone holds is busy, not garbage),
   the conditions re-checked, the links and the rows deleted; the stored
   objects are deleted only after that commit. The database's foreign keys
   (deferred to commit on PostgreSQL; SQLite runs one writer at a time) are the
   last word against a concurrent manifest ``PUT``: of the two transactions,
   one fails, and gc keeps a blob whose transaction failed. A push that loses
   gets ``MANIFEST_BLOB_UNKNOWN`` and uploads again.
4. *Storage sweep* (``registry.gc.sweep``): objects no row knows, older than the
   grace period, go: blobs whose row a killed or failed run already deleted,
   and leftovers of upload sessions whose row is gone. Blob keys are never
   reused (each names its upload), so deleting an old key never touches the
   bytes of a newer upload of the same digest.

A run killed at any point leaves every kept image whole (rows go before bytes)
and the next run finishes the job (the sweep). The run holds ``locks.GC`` (no
second gc, no restore meanwhile); phases 3 and 4, which delete blobs, also hold
``locks.BLOBS`` exclusive, which a running backup holds shared until it has
copied every blob its snapshot names. gc waits for such backups to end (up to
``wait``: a nightly gc and a nightly backup that overlap both succeed); if they
outlast it, the two phases are skipped and the report says so (``deferred``):
the next run deletes what they would have. Phases 1 and 2 need no such wait: a
backup reads every tag and manifest inside its snapshot.
"""

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from crow.env import format_duration
from registry import locks
from registry.events import audit
from registry.events import retention as audit_retention
from registry.events.models import DELETE_BLOB
from registry.gc import mirrored, retention, sweep, untagged
from registry.gc.report import Report, human_size
from registry.models import (
    AbsentReference,
    Blob,
    JobRun,
    Manifest,
    ManifestBlob,
    Repository,
    RepositoryBlob,
    Tag,
)
from registry.progress import Progress

BATCH = 500


class GcBusy(Exception):
    """Another gc holds the lock."""


@dataclass(frozen=True)
class GcOptions:
    grace_period: timedelta
    dry_run: bool = False
    untagged: bool = False
    delete_referrers: bool = False
    repository: str | None = None
    wait: timedelta = locks.DEFAULT_WAIT  # for running backups to end, before deleting blobs


@dataclass
class GcReport(Report):
    DID, WOULD, FAILED = "gc deleted", "gc would delete", "failures"

    tags: int = 0
    manifests: int = 0
    blobs: int = 0
    objects: int = 0  # swept from storage: no row knew them
    audit_events: int = 0  # older than CROW_AUDIT_RETENTION_DAYS
    deferred: str = ""  # why blobs and unknown objects were not deleted this time, if they were not
    grace_period: timedelta = timedelta(0)
    young_manifests: int = 0  # untagged (with --untagged) and younger than the grace period: kept
    young_blobs: int = 0  # unreferenced and younger than the grace period: kept
    mirrors: list[mirrored.UnusedRepository] = field(default_factory=list)  # unused mirrors emptied
    mirrors_bytes: int = 0  # of the blobs deleted, those linked into them

    def counts(self) -> str:
        return (
            f"{self.tags} tags, {self.manifests} manifests, {self.blobs} blobs,"
            f" {self.objects} unknown objects: {human_size(self.bytes)}"
            f"{mirrored.describe(self.mirrors, self.mirrors_bytes)}"
        )

    def remark(self) -> str:
        pruned = f"; {self.audit_events} audit events past their retention" if self.audit_events else ""
        return pruned + self.held_back() + (f"; {self.deferred}" if self.deferred else "")

    def held_back(self) -> str:
        """``; kept 1 untagged manifest, 2 unreferenced blobs younger than 1h (--grace-period 0 ...)``."""
        kept = [
            _plural(self.young_manifests, "untagged manifest"),
            _plural(self.young_blobs, "unreferenced blob"),
        ]
        kept = [what for what in kept if what]
        if not kept:
            return ""
        them = "it" if self.young_manifests + self.young_blobs == 1 else "them"
        return (
            f"; kept {' and '.join(kept)} younger than {_duration(self.grace_period)}"
            f" (--grace-period 0 to include {them}; a push in flight may need {them})"
        )


def _plural(count: int, what: str) -> str:
    return "" if not count else f"{count} {what}" + ("" if count == 1 else "s")


def _duration(period: timedelta) -> str:
    """``1h``, ``15m``, ``7d``, ``90s``: as the option takes it."""
    return format_duration(int(period.total_seconds()))


def collect(options: GcOptions, progress: Progress | None = None) -> GcReport:
    """One garbage collection; raises ``GcBusy`` if another one runs (a dry run takes no lock)."""
    progress = progress or Progress()
    report = GcReport()
    if options.dry_run:
        return _collect(options, progress, report)
    started = timezone.now()
    try:
        _collect(options, progress, report)
    except GcBusy:
        raise  # another gc is the run
    except BaseException:
        with contextlib.suppress(DatabaseError):  # the database may be why it failed
            JobRun.objects.finished("gc", started, succeeded=False, freed_bytes=report.bytes)
        raise
    JobRun.objects.finished("gc", started, succeeded=not report.failed, freed_bytes=report.bytes)
    return report


def _collect(options: GcOptions, progress: Progress, report: GcReport) -> GcReport:
    with report.timed(), contextlib.nullcontext() if options.dry_run else exclusive():
        now = timezone.now()
        cutoff = now - options.grace_period
        plan = retention.plan(now, options.repository)
        tags = plan.tags if options.dry_run else retention.apply(plan)
        for tag in tags:
            progress.note(f"tag {tag} (retention rule {tag.rule})")
        mirrors = mirrored.plan(now, options.repository)
        mirrors = mirrors if options.dry_run else mirrored.apply(mirrors, now)
        for mirror in mirrors.repositories:
            progress.note(f"mirrored repository {mirror.name}: last used {mirror.last_used:%Y-%m-%d %H:%M}")
        report.tags = len(tags) + len(mirrors.tag_ids - plan.tag_ids)  # a dry run's may overlap
        report.mirrors = mirrors.repositories
        if not options.dry_run:
            report.audit_events = audit_retention.prune(now)
        doomed = _collect_manifests(options, plan, mirrors, now, cutoff, report, progress)
        try:
            deleting = contextlib.ExitStack() if options.dry_run else _blobs_lock(options.wait, progress)
        except locks.Busy:
            report.deferred = (
                f"no blob deleted: backups ran for longer than the {options.wait} gc waits for them;"
                " the next run deletes what this one did not"
            )
        else:
            with deleting:
                _delete_unused(options, now, cutoff, doomed, mirrors.blob_ids(), report, progress)
        if options.grace_period:
            _count_held_back(options, cutoff, report)
    return report


def _count_held_back(options: GcOptions, cutoff: datetime, report: GcReport) -> None:
    """What only the grace period kept: young untagged manifests (--untagged), young unreferenced blobs."""
    report.grace_period = options.grace_period
    young_blobs = Blob.objects.filter(created__gte=cutoff).filter(
        ~Exists(ManifestBlob.objects.filter(blob=OuterRef("pk")))
    )
    if options.repository is not None:
        young_blobs = young_blobs.filter(
            Exists(RepositoryBlob.objects.filter(blob=OuterRef("pk"), repository__name=options.repository))
        )
    report.young_blobs = young_blobs.count()
    if options.untagged:
        young = Manifest.objects.filter(created__gte=cutoff).filter(
            ~Exists(Tag.objects.filter(manifest=OuterRef("pk")))
        )
        if options.repository is not None:
            young = young.filter(repository__name=options.repository)
        report.young_manifests = young.count()


def _delete_unused(
    options: GcOptions,
    now: datetime,
    cutoff: datetime,
    doomed: set[int],
    mirrored_blobs: set[int],
    report: GcReport,
    progress: Progress,
) -> None:
    """Phases 3 and 4: blobs no manifest references, then stored objects no row knows."""
    undeleted = _collect_blobs(options, cutoff, doomed, mirrored_blobs, report, progress)
    if options.repository is None:
        swept = sweep.sweep_storage(options.dry_run, now, cutoff, undeleted, progress)
        report.objects = swept.objects
        report.add(swept)


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Hold the gc lock for the block, or raise ``GcBusy``."""
    try:
        held = locks.take(locks.GC)
    except locks.Busy:
        raise GcBusy("another gc is running, or a restore (either holds the gc lock)") from None
    with held:
        yield


def _blobs_lock(wait: timedelta, progress: Progress) -> contextlib.ExitStack:
    """``locks.BLOBS``, exclusive: no backup is copying what its snapshot names; waits up to ``wait``."""

    shown = contextlib.ExitStack()  # a phase on stderr while gc waits: it may be hours

    def waiting() -> None:
        shown.enter_context(progress.phase(f"waiting up to {wait} for running backups to end"))

    with shown:
        return locks.take(locks.BLOBS, wait=wait.total_seconds(), waiting=waiting)


# --- Manifests --------------------------------------------------------------------


def _collect_manifests(
    options: GcOptions,
    plan: retention.RetentionPlan,
    mirrors: mirrored.MirrorPlan,
    now: datetime,
    cutoff: datetime,
    report: GcReport,
    progress: Progress,
) -> set[int]:
    """Untagged manifests, in every repository at once; returns the ids that went (or would go)."""
    # A dry run deleted no tag: pretend.
    dropped = plan.tag_ids | mirrors.tag_ids if options.dry_run else set()
    untagged_after = {**plan.untagged_after, **mirrored.unused_after(mirrors)}
    work = []  # (limit, batch), batches in the order they may go
    for limit, repositories in _untagged_limits(options, untagged_after, now, cutoff):
        levels = untagged.unreachable(limit, repositories, dropped, options.delete_referrers)
        work += [(limit, batch) for level in levels for batch in _chunked(level, BATCH)]
    names = _repository_names({row.repository_id for _, batch in work for row in batch})
    doomed: set[int] = set()
    with progress.phase("manifests", sum(len(batch) for _, batch in work)) as phase:
        for limit, batch in work:
            gone = batch if options.dry_run else untagged.delete(batch, limit, options.delete_referrers)
            for row in gone:
                progress.note(f"manifest {names[row.repository_id]}@{row.digest} {row.size} bytes")
                doomed.add(row.id)
            phase.advance(len(batch))
    report.manifests = len(doomed)
    return doomed


def _untagged_limits(
    options: GcOptions, untagged_after: dict[int, timedelta], now: datetime, cutoff: datetime
) -> list[tuple[datetime, list[int] | None]]:
    """(limit, repository ids or None for all): untagged manifests created before the limit go there.

    ``--untagged``: the grace period's cutoff, everywhere. Otherwise the
    retention rules' ``untagged_after_days`` of each repository they cover
    (never less than the grace period), and the grace period in unused
    mirrors (``registry.gc.mirrored``), grouped by limit: as many groups as
    distinct delays, however many repositories.
    """
    if options.untagged:
        if options.repository is None:
            return [(cutoff, None)]
        return [
            (cutoff, list(Repository.objects.filter(name=options.repository).values_list("id", flat=True)))
        ]
    by_limit: dict[datetime, list[int]] = defaultdict(list)
    for repository_id, delay in untagged_after.items():
        by_limit[min(cutoff, now - delay)].append(repository_id)
    return [(limit, sorted(ids)) for limit, ids in sorted(by_limit.items())]


def _repository_names(ids: set[int]) -> dict[int, str]:
    names: dict[int, str] = {}
    for chunk in _chunked(sorted(ids), BATCH):
        names.update(Repository.objects.filter(id__in=chunk).values_list("id", "name"))
    return names


# --- Blobs ----------------------------------------------------------------------


def _collect_blobs(
    options: GcOptions,
    cutoff: datetime,
    doomed: set[int],
    mirrored_blobs: set[int],
    report: GcReport,
    progress: Progress,
) -> set[str]:
    """Delete unreferenced blobs; returns the keys whose rows went but whose objects the store kept."""
    undeleted: set[str] = set()
    candidates = _blob_candidates(cutoff, options.repository, doomed if options.dry_run else set())
    with progress.phase("blobs", len(candidates)) as phase:
        for batch in _chunked(candidates, BATCH):
            deleted = batch if options.dry_run else _delete_blobs([row[0] for row in batch], cutoff)
            failures = {} if options.dry_run else sweep.delete_objects([key for _, _, _, key in deleted])
            for blob_id, digest, size, key in deleted:
                if blob_id in mirrored_blobs:
                    report.mirrors_bytes += size
                if key in failures:  # the row is gone: a later sweep retries
                    report.failed.append(f"blob {digest}: {failures[key]}")
                    undeleted.add(key)
                progress.note(f"blob {digest} {size} bytes")
                report.blobs += 1
                report.bytes += size
            phase.advance(len(batch))
    return undeleted


def _blob_candidates(cutoff: datetime, repository: str | None, doomed: set[int]) -> list[tuple]:
    """(id, digest, size, key) of blobs no manifest references (none but ``doomed`` ones, for a dry run)."""
    blobs = Blob.objects.filter(created__lt=cutoff).filter(
        ~Exists(RepositoryBlob.objects.filter(blob=OuterRef("pk"), created__gte=cutoff)),
        ~Exists(AbsentReference.objects.blobs().filter(digest=OuterRef("digest"))),
    )
    if repository is not None:
        blobs = blobs.filter(
            Exists(RepositoryBlob.objects.filter(blob=OuterRef("pk"), repository__name=repository))
        )
    columns = ("id", "digest", "size", "key")
    found = list(
        blobs.filter(~Exists(ManifestBlob.objects.filter(blob=OuterRef("pk")))).values_list(*columns)
    )
    freed: set[int] = set()
    for chunk in _chunked(sorted(doomed), BATCH):
        freed |= set(ManifestBlob.objects.filter(manifest_id__in=chunk).values_list("blob_id", flat=True))
    for chunk in _chunked(sorted(freed), BATCH):
        users = ManifestBlob.objects.filter(blob_id__in=chunk).values_list("blob_id", "manifest_id")
        still_used = {blob_id for blob_id, manifest_id in users if manifest_id not in doomed}
        found += blobs.filter(id__in=set(chunk) - still_used).values_list(*columns)
    return sorted(found)


def _delete_blobs(ids: list[int], cutoff: datetime) -> list[tuple]:
    """Delete the rows of those blobs that are still garbage, in one transaction; returns them.

    A batch that the database refuses (a reference committed meanwhile, a
    deadlock) is retried blob by blob; a blob that fails alone is kept.
    """
    try:
        with transaction.atomic():
            locked = {
                row[0]: row
                for row in Blob.objects.select_for_update(skip_locked=True)
                .filter(id__in=ids, created__lt=cutoff)
                .values_list("id", "digest", "size", "key")
            }
            busy = set(ManifestBlob.objects.filter(blob_id__in=locked).values_list("blob_id", flat=True))
            recent = RepositoryBlob.objects.filter(blob_id__in=locked, created__gte=cutoff)
            busy |= set(recent.values_list("blob_id", flat=True))
            absent = AbsentReference.objects.blobs().filter(digest__in=[row[1] for row in locked.values()])
            named = set(absent.values_list("digest", flat=True))
            busy |= {blob_id for blob_id, row in locked.items() if row[1] in named}
            garbage = [row for blob_id, row in sorted(locked.items()) if blob_id not in busy]
            doomed = [row[0] for row in garbage]
            RepositoryBlob.objects.filter(blob_id__in=doomed).delete()
            # ManifestBlob.blob is PROTECT: a reference that appeared anyway fails this, never cascades.
            Blob.objects.filter(id__in=doomed).delete()
            audit.record_all([audit.event(DELETE_BLOB, audit.GC, digest=row[1]) for row in garbage])
    except DatabaseError:
        if len(ids) == 1:
            return []
        return [row for blob_id in ids for row in _delete_blobs([blob_id], cutoff)]
    return garbage


def _chunked(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
