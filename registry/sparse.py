"""Sparse manifests: references to content the repository lacks (``CROW_SPARSE_MANIFESTS``).

The spec lets a registry accept a manifest whose referenced content is absent,
or refuse it (``MANIFEST_BLOB_UNKNOWN``). Copying one platform of a
multi-platform image with its digests preserved (``skopeo copy --multi-arch
index-only``, ``crane copy --platform``) pushes the index without the other
platforms' manifests, so by default (``indexes``) an index may name child
manifests the repository lacks; ``all`` lets image manifests name absent
configs and layers too (mirrors, partial copies); ``none`` refuses both.

Absent content is never served as present: it has no row, so its ``GET`` is
404 like anything unknown. The reference is kept as an ``AbsentReference``
row. A child manifest pushed later resolves the rows that name it in its
repository: they become ``ManifestChild`` rows in the transaction that stores
the child, so ``gc`` keeps the child for the index. That costs every manifest
``PUT`` one indexed statement (``registry.db.manifests.resolve_absent``). An absent blob's row stays even
once the blob is pushed (resolving it would cost every blob upload a
statement): ``gc`` keeps any blob whose digest such a row names, and the admin
says whether the blob is present now.
"""

from collections.abc import Collection
from dataclasses import dataclass

from registry import errors
from registry.errors import RegistryError
from registry.manifests import ParsedManifest
from registry.models import AbsentReference, Manifest, ManifestChild

INDEXES, ALL, NONE = "indexes", "all", "none"


@dataclass(frozen=True)
class Absent:
    """What a manifest being pushed references that its repository lacks, by digest."""

    blobs: tuple[str, ...] = ()
    children: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.blobs or self.children)


def check(parsed: ParsedManifest, blobs: Collection[str], children: Collection[str], mode: str) -> Absent:
    """The absent references ``mode`` accepts; raises ``MANIFEST_BLOB_UNKNOWN`` naming the others.

    ``blobs`` and ``children``: the digests the repository has, of those ``parsed`` references.
    """
    absent = Absent(
        blobs=tuple(sorted(set(parsed.blobs) - set(blobs))),
        children=tuple(sorted(set(parsed.children) - set(children))),
    )
    refused = list(absent.blobs if mode != ALL else ()) + list(absent.children if mode == NONE else ())
    if refused:
        raise RegistryError(errors.MANIFEST_BLOB_UNKNOWN, detail={"missing": refused})
    return absent


def resolve_present(repository_id: int) -> None:
    """Resolve every absent child reference of the repository whose manifest it has (a restore)."""
    present = dict(Manifest.objects.filter(repository_id=repository_id).values_list("digest", "id"))
    rows = AbsentReference.objects.filter(kind=AbsentReference.MANIFEST, manifest__repository=repository_id)
    links = [
        (row_id, parent, present[digest])
        for row_id, parent, digest in rows.values_list("id", "manifest_id", "digest")
        if digest in present
    ]
    ManifestChild.objects.bulk_create(
        [ManifestChild(parent_id=parent, child_id=child) for _, parent, child in links], ignore_conflicts=True
    )
    AbsentReference.objects.filter(id__in=[row_id for row_id, _, _ in links]).delete()
