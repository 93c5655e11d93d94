"""Untagged manifests: which ones nothing keeps, in every repository at once, and deleting one safely.

A manifest is kept when it is a *root* (a tag names it, or it is younger than
the limit: a push in flight uploads an index's children before the index), or
when something kept keeps it: an index keeps its children, a subject its
referrers (signatures, SBOMs, attestations), transitively. distribution's
``--delete-untagged`` once deleted the platform images of multi-platform
indexes: here a child of a kept index is always kept, and so is a child that a
kept sparse index named while it was absent (``registry.sparse``: its push links
it, and the mark also follows the absent references by digest, in case the
child's push and the index's crossed).

The mark starts from the garbage's side, so that its cost follows the untagged
manifests, not the number of repositories or tags: the *candidates* are the
old manifests no tag names, over all repositories in one statement (or a few
batches of repositories); those that a tagged or young index or subject keeps
directly are left out by the database already. Then, per batch of candidates,
what references them (parents, absent references, subjects). A candidate that
something outside the candidates references is kept (anything not a
candidate is kept), and so is, transitively, what a kept candidate keeps; the
rest is garbage. Every reference stays within a repository, so the mark of
all repositories at once is the mark of each.

The garbage comes in *levels*: an index (or a subject) is in an earlier level
than the manifests it lists (or its referrers), so that each level can be
deleted in batches whose members do not reference each other. ``delete``
re-checks a batch under row locks, in one transaction, that nothing
references its manifests now. The database does the rest: a concurrent push
that starts to reference one (a tag, an index) has a foreign key checked at
its commit, which waits for the lock and then fails (``MANIFEST_BLOB_UNKNOWN``).
"""

from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from registry.events import audit
from registry.events.models import DELETE_MANIFEST
from registry.models import AbsentReference, Manifest, ManifestBlob, ManifestChild, Repository, Tag

BATCH = 500  # ids or digests per statement: SQLite allows a few thousand parameters


@dataclass(frozen=True)
class UntaggedManifest:
    id: int
    repository_id: int
    digest: str
    subject: str
    size: int


class _StillReferenced(Exception):
    pass


def unreachable(
    limit: datetime, repositories: list[int] | None, dropped_tags: set[int], delete_referrers: bool
) -> list[list[UntaggedManifest]]:
    """The manifests nothing keeps, in levels: parents and subjects before what they reference.

    ``limit``: manifests created since are kept. ``repositories``: the ids of
    the repositories to look in (None: all). ``dropped_tags``: tag ids to count
    as gone (what a dry run's retention would delete).
    """
    candidates = _candidates(limit, repositories, dropped_tags, delete_referrers)
    keeps: dict[int, list[int]] = defaultdict(list)  # what each manifest keeps, among the candidates
    after: dict[int, list[int]] = defaultdict(list)  # what can go only after it has
    for source, target, keeping in _references_to(candidates, delete_referrers):
        after[source].append(target)
        if keeping:
            keeps[source].append(target)
    outside = {source for source in keeps if source not in candidates}  # roots, or kept by one
    kept = _closure(outside, keeps)
    garbage = {manifest_id for manifest_id in candidates if manifest_id not in kept}
    return [[candidates[manifest_id] for manifest_id in level] for level in _levels(garbage, after)]


def _candidates(
    limit: datetime, repositories: list[int] | None, dropped_tags: set[int], delete_referrers: bool
) -> dict[int, UntaggedManifest]:
    """Old manifests no tag names (but dropped ones): all the garbage, and what keeps some of it."""
    untagged = Manifest.objects.filter(created__lt=limit).filter(
        ~Exists(Tag.objects.filter(manifest=OuterRef("pk")))
    )
    if not dropped_tags:  # else a tagged index may lose its tag: "tagged" would not mean "kept"
        untagged = untagged.exclude(_kept_by_a_root(limit, delete_referrers))
    found = {row.id: row for row in _rows(untagged, repositories)}
    for chunk in _chunked(_only_dropped_tags(dropped_tags), BATCH):
        was_tagged = Manifest.objects.filter(created__lt=limit, id__in=chunk)
        found.update((row.id, row) for row in _rows(was_tagged, repositories))
    return found


def _kept_by_a_root(limit: datetime, delete_referrers: bool) -> Q:
    """Manifests that a tagged or young one keeps directly: its children, and its referrers.

    The common case (the platform images of a tagged index, the signatures of
    a tagged image) so never leaves the database.
    """
    root = Q(created__gte=limit) | Q(Exists(Tag.objects.filter(manifest=OuterRef("pk"))))
    children = ManifestChild.objects.filter(
        Q(parent__created__gte=limit) | Q(Exists(Tag.objects.filter(manifest=OuterRef("parent"))))
    )
    kept = Q(Exists(children.filter(child=OuterRef("pk"))))
    if not delete_referrers:
        subjects = Manifest.objects.filter(
            root, repository=OuterRef("repository"), digest=OuterRef("subject")
        )
        kept |= ~Q(subject="") & Q(Exists(subjects))
    return kept


def _only_dropped_tags(dropped_tags: set[int]) -> list[int]:
    """The manifests whose every tag is one of ``dropped_tags``."""
    named: set[int] = set()
    for chunk in _chunked(sorted(dropped_tags), BATCH):
        named |= set(Tag.objects.filter(id__in=chunk).values_list("manifest_id", flat=True))
    still_tagged: set[int] = set()
    for chunk in _chunked(sorted(named), BATCH):
        tags = Tag.objects.filter(manifest_id__in=chunk).values_list("id", "manifest_id")
        still_tagged |= {manifest_id for tag_id, manifest_id in tags if tag_id not in dropped_tags}
    return sorted(named - still_tagged)


def _rows(manifests: QuerySet[Manifest], repositories: list[int] | None) -> Iterator[UntaggedManifest]:
    """The rows of ``manifests`` in ``repositories`` (None: all), a batch of repositories at a time."""
    columns = ("id", "repository_id", "digest", "subject", "size")
    if repositories is None:
        batches = [manifests]
    else:
        batches = [manifests.filter(repository_id__in=chunk) for chunk in _chunked(repositories, BATCH)]
    for batch in batches:
        for row in batch.values_list(*columns).iterator(chunk_size=10_000):
            yield UntaggedManifest(*row)


def _references_to(
    candidates: dict[int, UntaggedManifest], delete_referrers: bool
) -> Iterator[tuple[int, int, bool]]:
    """(source, candidate, whether the source keeps it) for every reference to a candidate.

    A parent index references its children (rows, or absent references by
    digest) and keeps them; a subject references its referrers, and keeps
    them unless they may go.
    """
    for chunk in _chunked(sorted(candidates), BATCH):
        edges = ManifestChild.objects.filter(child_id__in=chunk).values_list("parent_id", "child_id")
        yield from ((parent, child, True) for parent, child in edges)
    by_digest = {(row.repository_id, row.digest): row.id for row in candidates.values()}
    for chunk in _chunked(sorted({digest for _, digest in by_digest}), BATCH):
        absent = AbsentReference.objects.filter(kind=AbsentReference.MANIFEST, digest__in=chunk)
        for parent, repository_id, digest in absent.values_list(
            "manifest_id", "manifest__repository_id", "digest"
        ):
            if (repository_id, digest) in by_digest:
                yield parent, by_digest[repository_id, digest], True
    for chunk in _chunked([row for row in candidates.values() if row.subject], BATCH):
        subjects = Manifest.objects.filter(
            repository_id__in={row.repository_id for row in chunk}, digest__in={row.subject for row in chunk}
        ).values_list("repository_id", "digest", "id")
        present = {(repository_id, digest): subject for repository_id, digest, subject in subjects}
        for row in chunk:
            if (row.repository_id, row.subject) in present:
                yield present[row.repository_id, row.subject], row.id, not delete_referrers


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


def delete(
    rows: Sequence[UntaggedManifest], limit: datetime, delete_referrers: bool
) -> list[UntaggedManifest]:
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
            AbsentReference.objects.filter(manifest_id__in=ids).delete()  # a sparse manifest's own
            _, deleted = Manifest.objects.filter(id__in=ids).delete()
            if any(count for label, count in deleted.items() if label != Manifest._meta.label):
                # Django's cascade found a tag or a parent after all: keep everything.
                raise _StillReferenced
            _record([row for row in rows if row.id in set(ids)])
    except (_StillReferenced, DatabaseError):
        if len(rows) == 1:
            return []
        return [gone for row in rows for gone in delete([row], limit, delete_referrers)]
    gone = set(ids)
    return [row for row in rows if row.id in gone]


def _record(deleted: list[UntaggedManifest]) -> None:
    """The manifests gc deleted, in the audit log (in the deleting transaction)."""
    if not deleted:
        return
    names = dict(
        Repository.objects.filter(id__in={row.repository_id for row in deleted}).values_list("id", "name")
    )
    audit.record_all(
        [
            audit.event(
                DELETE_MANIFEST, audit.GC, repository=names.get(row.repository_id, ""), digest=row.digest
            )
            for row in deleted
        ]
    )


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


def _chunked(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
