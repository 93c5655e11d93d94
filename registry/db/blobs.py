"""Blobs and their links into repositories: "is this blob in this repository", recording, linking.

A blob row is global (one per digest); a repository sees it only through a
``RepositoryBlob`` link. The row is locked (``FOR NO KEY UPDATE``, PostgreSQL)
wherever a link is about to be made to it, so that garbage collection, which
deletes it ``FOR UPDATE``, either goes first (and the blob is not found) or
waits for the link.
"""

import uuid
from collections.abc import Collection
from typing import NamedTuple

from django.db import connection, transaction

from registry.db import uploads as sessions
from registry.db.sql import Insert, Names, ignore_conflict, one, placeholders, prepared, rowcount, rows
from registry.models import Blob, Repository, RepositoryBlob, Upload


class BlobRow(NamedTuple):
    """What a blob GET or HEAD needs."""

    size: int
    key: str


class Linked(NamedTuple):
    """A blob or manifest that a manifest being pushed references (``size`` 0 for a manifest)."""

    id: int
    digest: str
    size: int


_b, _l, _r = Names(Blob, "b"), Names(RepositoryBlob, "l"), Names(Repository, "r")
_blob, _link = Insert(Blob), Insert(RepositoryBlob)
_IN_REPOSITORY = f"JOIN {_l} ON {_l.blob} = {_b.id} JOIN {_r} ON {_r.id} = {_l.repository} AND {_r.name} = %s"
# Index used: the blob's unique digest, then unique_repository_blob.
_LINKED = f"SELECT {_b.of('size', 'key')} FROM {_b} {_IN_REPOSITORY} WHERE {_b.digest} = %s"
_RECORD = f"{_blob.values()} {ignore_conflict(Blob, 'digest')} RETURNING {Names(Blob).id}"
# Index used: the blob's unique digest (and unique_repository_blob with a source repository).
_LOCKED = f"SELECT {_b.of('id', 'size', 'key')} FROM {_b} WHERE {_b.digest} = %s"
_LOCKED_IN = f"SELECT {_b.of('id', 'size', 'key')} FROM {_b} {_IN_REPOSITORY} WHERE {_b.digest} = %s"
_UNLINK = (
    f"DELETE FROM {Names(RepositoryBlob)} WHERE {Names(RepositoryBlob).repository} = "
    f"(SELECT {_r.id} FROM {_r} WHERE {_r.name} = %s) AND {Names(RepositoryBlob).blob} = "
    f"(SELECT {_b.id} FROM {_b} WHERE {_b.digest} = %s)"
)


# An upload's last statement on PostgreSQL: the blob's row (inserted, or the existing one locked as
# ``locked`` locks it), its link into the repository and the session's end, in one round trip
# instead of four. Its snapshot may miss a row that a concurrent upload of the same bytes committed
# after it began (the insert then finds the conflict, the select no row): nothing then is linked or
# deleted, no row comes back, and the caller runs it again.
_STORE_UPLOAD = (
    f"WITH new AS ({_RECORD}, {Names(Blob).of('size', 'key')}), "
    f"old AS (SELECT {_b.of('id', 'size', 'key')} FROM {_b} WHERE {_b.digest} = %s "
    "AND NOT EXISTS (SELECT FROM new) FOR NO KEY UPDATE OF b), "
    "chosen AS (SELECT * FROM new UNION ALL SELECT * FROM old), "
    f"linked AS ({_link.select({'blob_id': 'chosen.id'}, 'FROM chosen')} ON CONFLICT DO NOTHING), "
    f"closed AS (DELETE FROM {Names(Upload)} WHERE {Names(Upload).id} = %s AND EXISTS (SELECT FROM chosen)) "
    "SELECT * FROM chosen"
)


def linked(name: str, digest: str) -> BlobRow | None:
    """The blob ``digest`` if it is linked into repository ``name``."""
    row = one(_LINKED, [name, digest])
    return None if row is None else BlobRow(row[0], row[1])


def record(digest: str, size: int, key: str) -> Blob | None:
    """Insert the row of a newly stored blob; None if the digest has a row already."""
    row = _blob.row({"digest": digest, "size": size, "key": key})
    inserted = one(_RECORD, _blob.params([row]))
    return None if inserted is None else Blob(id=inserted[0], **row)


def locked(digest: str, source: str | None = None) -> Blob | None:
    """The row of blob ``digest`` (if repository ``source`` has it, when given), locked against gc's
    delete until the transaction ends (PostgreSQL)."""
    sql, params = (_LOCKED, [digest]) if source is None else (_LOCKED_IN, [source, digest])
    if connection.features.has_select_for_no_key_update:
        # NO KEY UPDATE: it excludes gc's FOR UPDATE, not the KEY SHARE that a concurrent manifest
        # PUT's foreign key takes at commit (FOR UPDATE deadlocked with that PUT's link insert).
        sql += " FOR NO KEY UPDATE OF b"
    row = one(sql, params)
    return None if row is None else Blob(id=row[0], digest=digest, size=row[1], key=row[2])


def store_upload(digest: str, size: int, key: str, repository_id: int, upload_id: uuid.UUID) -> Blob | None:
    """Record the blob that upload ``upload_id`` made (``key`` in the store), or take the existing row
    of ``digest``, link it into the repository and delete the session, in one transaction; the
    blob's row, or None if it vanished meanwhile (gc deleted it: the caller runs this again)."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            blob = record(digest, size, key) or locked(digest)
            if blob is not None:
                link(repository_id, [blob.id])
                sessions.delete(upload_id)
        return blob
    row = _blob.row({"digest": digest, "size": size, "key": key})
    links = _link.params([_link.row({"repository_id": repository_id, "blob_id": None})], computed=["blob_id"])
    chosen = one(_STORE_UPLOAD, [*_blob.params([row]), digest, *links, prepared(Upload, "id", upload_id)])
    return None if chosen is None else Blob(id=chosen[0], digest=digest, size=chosen[1], key=chosen[2])


def link(repository_id: int, blob_ids: Collection[int]) -> None:
    """Make blobs ``blob_ids`` visible in repository ``repository_id``; linking twice is harmless."""
    if not blob_ids:
        return
    links = [_link.row({"repository_id": repository_id, "blob_id": id_}) for id_ in blob_ids]
    rowcount(f"{_link.values(len(links))} ON CONFLICT DO NOTHING", _link.params(links))


def unlink(name: str, digest: str) -> bool:
    """Hide blob ``digest`` from repository ``name``; False if it was not there."""
    return rowcount(_UNLINK, [name, digest]) > 0


def linked_among(repository_id: int, digests: Collection[str]) -> list[Linked]:
    """Which of ``digests`` are blobs of the repository."""
    if not digests:
        return []
    sql = (
        f"SELECT {_b.of('id', 'digest', 'size')} FROM {_b} JOIN {_l} ON {_l.blob} = {_b.id} "
        f"WHERE {_l.repository} = %s AND {_b.digest} IN ({placeholders(len(digests))})"
    )
    return [Linked(*row) for row in rows(sql, [repository_id, *digests])]
