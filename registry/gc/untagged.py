"""Untagged manifests of one repository: which ones nothing keeps, and deleting one safely.

The mark is in memory, per repository: the roots are the tagged manifests
and those younger than the limit (a push in flight uploads an index's
children before the index); from them, an index keeps its children and a
subject keeps its referrers (signatures, SBOMs, attestations), transitively.
distribution's ``--delete-untagged`` once deleted the platform images of
multi-platform indexes: here a child of a kept index is always kept, and so is
a child that a kept sparse index named while it was absent (``registry.sparse``:
its push links it, and the mark also follows the absent references by digest,
in case the child's push and the index's crossed).

The garbage comes in *levels*: an index (or a subject) is in an earlier level
than the manifests it lists (or its referrers), so that each level can be
deleted in batches whose members do not reference each other. ``delete``
re-checks a batch under row locks, in one transaction, that nothing
references its manifests now. The database does the rest: a concurrent push
that starts to reference one (a tag, an index) has a foreign key checked at
its commit, which waits for the lock and then fails (``MANIFEST_BLOB_UNKNOWN``).
"""

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, transaction

from registry.models import AbsentReference, Manifest, ManifestBlob, ManifestChild, Tag


@dataclass(frozen=True)
class ManifestRow:
    id: int
    digest: str
    subject: str
    created: datetime
    size: int


class _StillReferenced(Exception):
    pass


def unreachable(
    repository_id: int, limit: datetime, dropped_tags: set[int], delete_referrers: bool
) -> list[list[ManifestRow]]:
    """The manifests nothing keeps, in levels: parents and subjects before what they reference.

    ``limit``: manifests created since are kept. ``dropped_tags``: tag ids to
    count as gone (what a dry run's retention would delete).
    """
    rows = {
        row[0]: ManifestRow(*row)
        for row in Manifest.objects.filter(repository_id=repository_id).values_list(
            "id", "digest", "subject", "created", "size"
        )
    }
    tags = Tag.objects.filter(repository_id=repository_id).values_list("id", "manifest_id")
    roots = {manifest_id for tag_id, manifest_id in tags if tag_id not in dropped_tags}
    roots |= {row.id for row in rows.values() if row.created >= limit}
    # What each manifest keeps: its children, and (unless they may go) its referrers.
    keeps: dict[int, list[int]] = defaultdict(list)
    # What can go only after a manifest has: its children, and its referrers.
    after: dict[int, list[int]] = defaultdict(list)
    edges = ManifestChild.objects.filter(parent__repository_id=repository_id).values_list(
        "parent_id", "child_id"
    )
    by_digest = {row.digest: row.id for row in rows.values()}
    for parent, child in [*edges, *_absent_children(repository_id, by_digest)]:
        keeps[parent].append(child)
        after[parent].append(child)
    for row in rows.values():
        if row.subject in by_digest:
            after[by_digest[row.subject]].append(row.id)
            if not delete_referrers:
                keeps[by_digest[row.subject]].append(row.id)
    kept = _closure(roots, keeps)
    garbage = {manifest_id for manifest_id in rows if manifest_id not in kept}
    return [[rows[manifest_id] for manifest_id in level] for level in _levels(garbage, after)]


def _absent_children(repository_id: int, by_digest: dict[str, int]) -> list[tuple[int, int]]:
    """(parent, child) for the absent references of the repository's indexes whose child is here now."""
    absent = AbsentReference.objects.filter(
        manifest__repository_id=repository_id, kind=AbsentReference.MANIFEST
    ).values_list("manifest_id", "digest")
    return [(parent, by_digest[digest]) for parent, digest in absent if digest in by_digest]


def _closure(roots: set[int], edges: dict[int, list[int]]) -> set[int]:
    seen = set(roots)
    queue = deque(roots)
    while queue:
        for target in edges.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _levels(nodes: set[int], edges: dict[int, list[int]]) -> list[list[int]]:
    """``nodes`` by topological level (Kahn); digests make cycles impossible, any would come last."""
    incoming = dict.fromkeys(nodes, 0)
    for node in nodes:
        for target in set(edges[node]):
            if target in incoming:
                incoming[target] += 1
    level = sorted(node for node, count in incoming.items() if count == 0)
    levels, placed = [], set()
    while level:
        levels.append(level)
        placed.update(level)
        following = []
        for node in level:
            for target in set(edges[node]):
                if target in incoming:
                    incoming[target] -= 1
                    if incoming[target] == 0:
                        following.append(target)
        level = sorted(following)
    rest = sorted(nodes - placed)
    return levels + ([rest] if rest else [])


def delete(rows: Sequence[ManifestRow], limit: datetime, delete_referrers: bool) -> list[ManifestRow]:
    """Delete those of ``rows`` that nothing keeps now, with their own reference rows; returns them.

    A batch the database refuses is retried manifest by manifest; one that
    fails alone is kept.
    """
    try:
        with transaction.atomic():
            locked = list(
                Manifest.objects.select_for_update(skip_locked=True)
                .filter(id__in=[row.id for row in rows], created__lt=limit)
                .values_list("id", "repository_id", "subject", "digest")
            )
            busy = set(
                Tag.objects.filter(manifest_id__in=[m[0] for m in locked]).values_list(
                    "manifest_id", flat=True
                )
            )
            parents = ManifestChild.objects.filter(child_id__in=[m[0] for m in locked])
            busy |= set(parents.values_list("child_id", flat=True))
            busy |= _named_by_absent_references(locked)
            if not delete_referrers:
                busy |= _referrers_of_present_subjects(locked)
            ids = [manifest_id for manifest_id, _, _, _ in locked if manifest_id not in busy]
            ManifestBlob.objects.filter(manifest_id__in=ids).delete()
            ManifestChild.objects.filter(parent_id__in=ids).delete()
            _, deleted = Manifest.objects.filter(id__in=ids).delete()
            if any(count for label, count in deleted.items() if label != Manifest._meta.label):
                # Django's cascade found a tag or a parent after all: keep everything.
                raise _StillReferenced
    except (_StillReferenced, DatabaseError):
        if len(rows) == 1:
            return []
        return [gone for row in rows for gone in delete([row], limit, delete_referrers)]
    gone = set(ids)
    return [row for row in rows if row.id in gone]


def _named_by_absent_references(manifests: list[tuple[int, int, str, str]]) -> set[int]:
    """Those of ``manifests`` that an index of their repository still names as an absent child."""
    absent = set(
        AbsentReference.objects.filter(
            kind=AbsentReference.MANIFEST, digest__in=[digest for _, _, _, digest in manifests]
        ).values_list("manifest__repository_id", "digest")
    )
    return {manifest_id for manifest_id, repository, _, digest in manifests if (repository, digest) in absent}


def _referrers_of_present_subjects(manifests: list[tuple[int, int, str, str]]) -> set[int]:
    wanted = {(repository_id, subject) for _, repository_id, subject, _ in manifests if subject}
    if not wanted:
        return set()
    present = set(
        Manifest.objects.filter(
            repository_id__in={repository_id for repository_id, _ in wanted},
            digest__in={subject for _, subject in wanted},
        ).values_list("repository_id", "digest")
    )
    return {
        manifest_id
        for manifest_id, repository_id, subject, _ in manifests
        if (repository_id, subject) in present
    }
