"""Mirrored repositories nobody pulled for their upstream's ``unused_days``: gc empties them.

A mirrored repository (``registry.mirror``) is *unused* when its last pull
(its last sync if it was never pulled, its creation if neither) is older
than its upstream's ``unused_days``; an upstream without it keeps its
mirrors forever. In one gc run, an unused repository loses its tags (each
re-checked under the mirror row's lock: a pull that came meanwhile keeps
them), then, in the manifest phase, every manifest older than the grace
period, then, in the blob phase, each blob no other manifest references. The
repository and its mirror row stay: the next pull fills it from the upstream
again. A dry run deletes nothing and reports what would go.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Coalesce

from registry.events import audit
from registry.events.models import DELETE_TAG
from registry.gc.report import human_size
from registry.gc.untagged import BATCH, _chunked
from registry.mirror.models import MirroredRepository, Upstream
from registry.models import Manifest, RepositoryBlob, Tag


@dataclass(frozen=True)
class UnusedRepository:
    id: int
    name: str
    days: int  # its upstream's unused_days
    last_used: datetime


@dataclass
class MirrorPlan:
    repositories: list[UnusedRepository] = field(default_factory=list)
    tag_ids: set[int] = field(default_factory=set)

    @property
    def repository_ids(self) -> list[int]:
        return sorted(repository.id for repository in self.repositories)

    def blob_ids(self) -> set[int]:
        """The blobs linked into these repositories: the ones whose bytes the report counts as theirs."""
        found: set[int] = set()
        for chunk in _chunked(self.repository_ids, BATCH):
            found |= set(
                RepositoryBlob.objects.filter(repository_id__in=chunk).values_list("blob_id", flat=True)
            )
        return found


def _unused(upstream: Upstream, now: datetime) -> QuerySet[MirroredRepository]:
    """The upstream's mirrors last used before its limit that still hold a manifest."""
    limit = now - timedelta(days=upstream.unused_days or 0)
    return (
        MirroredRepository.objects.filter(upstream=upstream)
        .annotate(last_used=Coalesce("last_pulled", "last_synced", "repository__created"))
        .filter(last_used__lt=limit)
        .filter(Exists(Manifest.objects.filter(repository=OuterRef("repository"))))
    )


def plan(now: datetime, repository: str | None = None) -> MirrorPlan:
    """The unused mirrored repositories at ``now`` (only ``repository``, if given) and their tags."""
    result = MirrorPlan()
    for upstream in Upstream.objects.filter(unused_days__isnull=False).order_by("prefix"):
        found = _unused(upstream, now)
        if repository is not None:
            found = found.filter(repository__name=repository)
        rows = found.values_list("repository_id", "repository__name", "last_used").order_by(
            "repository__name"
        )
        result.repositories += [
            UnusedRepository(repository_id, name, upstream.unused_days or 0, last_used)
            for repository_id, name, last_used in rows
        ]
    for chunk in _chunked(result.repository_ids, BATCH):
        result.tag_ids |= set(Tag.objects.filter(repository_id__in=chunk).values_list("id", flat=True))
    return result


def apply(mirrors: MirrorPlan, now: datetime) -> MirrorPlan:
    """Delete the tags of the plan's repositories that are still unused; returns those and their tags."""
    done = MirrorPlan()
    for unused in mirrors.repositories:
        with transaction.atomic():
            locked = MirroredRepository.objects.select_for_update().filter(repository_id=unused.id)
            upstream_ids = list(locked.values_list("upstream_id", flat=True))
            upstream = Upstream.objects.filter(pk__in=upstream_ids, unused_days__isnull=False).first()
            if upstream is None or not _unused(upstream, now).filter(repository_id=unused.id).exists():
                continue  # pulled meanwhile, or its upstream changed its mind
            tags = list(
                Tag.objects.filter(repository_id=unused.id).values_list("id", "name", "manifest__digest")
            )
            Tag.objects.filter(id__in=[tag_id for tag_id, _, _ in tags]).delete()
            audit.record_all(
                [
                    audit.event(
                        DELETE_TAG,
                        audit.GC,
                        repository=unused.name,
                        reference=name,
                        digest=digest,
                        detail={"mirror_unused_days": unused.days},
                    )
                    for _, name, digest in tags
                ]
            )
            done.repositories.append(unused)
            done.tag_ids |= {tag_id for tag_id, _, _ in tags}
    return done


def describe(emptied: list[UnusedRepository], freed: int) -> str:
    """`` (of which 2 mirrored repositories unused for 30 days: 120.0 MiB (...))`` in gc's line, or ''."""
    if not emptied:
        return ""
    days = sorted({mirror.days for mirror in emptied})
    period = f"{days[0]}" if len(days) == 1 else f"{days[0]} to {days[-1]}"
    what = "mirrored repository" if len(emptied) == 1 else "mirrored repositories"
    return f" (of which {len(emptied)} {what} unused for {period} days: {human_size(freed)})"


def unused_after(mirrors: MirrorPlan) -> dict[int, timedelta]:
    """Repository id -> age past which an untagged manifest goes: any, in an unused mirror."""
    return dict.fromkeys(mirrors.repository_ids, timedelta(0))
