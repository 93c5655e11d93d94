"""Storing a pushed manifest: its references, its tag and its conflicts, all or nothing.

The repository (created by the first push), which of the referenced blobs
and child manifests it has, then what the push writes (``registry.db``): the
manifest's row, its references, the absent references it may keep or
resolves (``registry.sparse``), the blob links again, the audit row
(``registry.events.audit``), the tag. The blobs' sizes must be the ones the
manifest states. On PostgreSQL the writes are one statement
(``manifests.store``; three round trips in all where a transaction of one
statement each took eleven); on SQLite one transaction.

The checks run before the commit, and the database's foreign keys stand
behind them: a blob or child manifest that garbage collection or a delete
removes in between fails the commit, which the client hears as
``MANIFEST_BLOB_UNKNOWN`` (push it again), never as a manifest that names
nothing.
"""

import contextlib

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from registry import errors, sparse
from registry.db import blobs, manifests, repositories
from registry.db.blobs import Linked
from registry.errors import RegistryError
from registry.events import audit
from registry.manifests import ParsedManifest

# A statement whose snapshot missed a row that a concurrent push committed writes nothing: run again.
STORE_ATTEMPTS = 3


def store_manifest(
    name: str,
    digest: str,
    content: bytes,
    parsed: ParsedManifest,
    tag: str | None,
    sparse_mode: str | None = None,
) -> int:
    """Store manifest ``digest`` (``content``, parsed) in repository ``name``, tagged ``tag`` if given;
    the repository's id. ``sparse_mode``: which absent references to keep (``registry.sparse``;
    ``CROW_SPARSE_MANIFESTS`` unless given: the pull-through cache keeps all of them)."""
    try:
        return _store(name, digest, content, parsed, tag, sparse_mode or settings.CROW_SPARSE_MANIFESTS)
    except IntegrityError as exc:
        # A blob or child manifest went (garbage collection, a delete) between the
        # check and the commit: the database's foreign keys refused the reference.
        raise RegistryError(
            errors.MANIFEST_BLOB_UNKNOWN, "a referenced blob or manifest was deleted meanwhile; push it again"
        ) from exc


def _store(name: str, digest: str, content: bytes, parsed: ParsedManifest, tag: str | None, mode: str) -> int:
    if connection.vendor != "postgresql":
        with transaction.atomic():
            return _store_each(name, digest, content, parsed, tag, mode)
    # The statement's own transaction, or a savepoint in the caller's: a refusal by a foreign key
    # must not end a transaction that the caller goes on with.
    with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
        return _store_at_once(name, digest, content, parsed, tag, mode)


def _store_at_once(
    name: str, digest: str, content: bytes, parsed: ParsedManifest, tag: str | None, mode: str
) -> int:
    repository_id = repositories.id_of(name) or _create_repository(name)
    linked = blobs.linked_among(repository_id, parsed.blobs)
    children = manifests.among(repository_id, parsed.children)
    absent = _check_references(parsed, linked, children, mode)
    row = audit.event(
        "push",
        repository=name,
        reference=tag or "",
        digest=digest,
        media_type=parsed.media_type,
        size=len(content),
    )
    references = ([blob.id for blob in linked], [child.id for child in children])
    for _ in range(STORE_ATTEMPTS):
        stored = manifests.store(
            repository_id, digest, content, parsed, references, (absent.blobs, absent.children), tag, row
        )
        if stored is not None:
            return repository_id
    raise IntegrityError("the manifest was deleted meanwhile, every time")


def _create_repository(name: str) -> int:
    with transaction.atomic():  # the repository and the audit row of its creation
        repository_id = audit.create_repository(name)
    if repository_id is None:  # created and deleted again by an operator, in between
        raise IntegrityError("the repository was deleted meanwhile")
    return repository_id


def _store_each(
    name: str, digest: str, content: bytes, parsed: ParsedManifest, tag: str | None, mode: str
) -> int:
    repository_id = repositories.id_of(name) or audit.create_repository(name)
    if repository_id is None:  # created and deleted again by an operator, in between
        raise IntegrityError("the repository was deleted meanwhile")
    linked = blobs.linked_among(repository_id, parsed.blobs)
    children = manifests.among(repository_id, parsed.children)
    absent = _check_references(parsed, linked, children, mode)
    manifest_id = manifests.insert(repository_id, digest, content, parsed)
    if manifest_id is None:  # it existed, and garbage collection deleted it since the insert
        raise IntegrityError("the manifest was deleted meanwhile")
    blob_ids = [blob.id for blob in linked]
    manifests.link_references(manifest_id, blob_ids, [child.id for child in children])
    if absent:
        manifests.record_absent(manifest_id, absent.blobs, absent.children)
    manifests.resolve_absent(repository_id, digest, manifest_id)  # indexes pushed before it, if any
    # Linked already; linked again so that a link that gc removed meanwhile is back at commit.
    blobs.link(repository_id, blob_ids)
    # Before the tag moves: the audit row reads what it named.
    audit.pushed(name, tag, digest, parsed.media_type, len(content), repository_id)
    if tag:
        manifests.point_tag(repository_id, tag, manifest_id)
    return repository_id


def _check_references(
    parsed: ParsedManifest, linked: list[Linked], children: list[Linked], mode: str
) -> sparse.Absent:
    """What the manifest may reference without the repository having it (``mode``: ``registry.sparse``)."""
    present_blobs, present_children = {blob.digest for blob in linked}, {child.digest for child in children}
    absent = sparse.check(parsed, present_blobs, present_children, mode)
    for blob in linked:
        if blob.size != parsed.blobs[blob.digest]:
            raise RegistryError(
                errors.MANIFEST_INVALID,
                f"the manifest says {blob.digest} has {parsed.blobs[blob.digest]} bytes, it has {blob.size}",
                detail={"digest": blob.digest, "size": blob.size},
            )
    return absent
