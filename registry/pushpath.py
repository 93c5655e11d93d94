"""The push path's statements, as fixed SQL: upload sessions, the blobs they become, manifests.

A push costs every blob a POST, a PATCH and a PUT, each a few statements on
one row, and ends with a manifest PUT that every client waits for. Built by
the ORM (querysets, ``RawQuerySet``, ``bulk_create``), a quarter of a small
push's CPU, and half of a manifest PUT's time, went into compiling those
statements and building model instances from their rows; these are written
once, portable between PostgreSQL and SQLite, and return only what the caller
uses. With ``CROW_DB_PREPARE`` psycopg prepares the fixed ones, as it does the
pull path's (``registry.hotpath``).

Values are prepared for the database by their model field (a UUID is
``uuid`` on PostgreSQL and hex text on SQLite, a JSON value ``jsonb`` or text).
"""

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection
from django.utils import timezone

from registry.manifests import ParsedManifest
from registry.models import (
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    Tag,
    Upload,
)


class Linked(NamedTuple):
    """A blob or manifest that a manifest being pushed references (``size`` 0 for a manifest)."""

    id: int
    digest: str
    size: int


def _prepared(model, field: str, value: Any) -> Any:
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _sql() -> dict[str, str]:
    upload, repository = Upload._meta.db_table, Repository._meta.db_table
    blob = Blob._meta.db_table
    manifest, tag = Manifest._meta.db_table, Tag._meta.db_table
    offset, key = _quoted("offset"), _quoted("key")
    # Index used: the primary key, and the repository's unique name.
    claim = (
        f"UPDATE {upload} SET claim = %s, claimed_until = %s "
        f"WHERE id = %s AND repository_id = (SELECT id FROM {repository} WHERE name = %s) "
        "AND (claim IS NULL OR claimed_until < %s)"
    )
    returning = f" RETURNING repository_id, {offset}, hash_state, storage_state"
    return {
        # Nothing is inserted if the repository does not exist yet: the caller creates it and retries.
        "insert": (
            f"INSERT INTO {upload} (id, repository_id, {offset}, hash_state, storage_state, claim, "
            "claimed_until, created, updated) "
            f"SELECT %s, id, 0, %s, %s, %s, %s, %s, %s FROM {repository} WHERE name = %s "
            "RETURNING repository_id"
        ),
        "claim": claim + returning,
        "claim_at_offset": claim + f" AND {offset} = %s" + returning,
        "save": (
            f"UPDATE {upload} SET {offset} = %s, hash_state = %s, storage_state = %s, updated = %s, "
            "claim = NULL, claimed_until = NULL WHERE id = %s AND claim = %s"
        ),
        "release": f"UPDATE {upload} SET claim = NULL, claimed_until = NULL WHERE id = %s AND claim = %s",
        "delete": f"DELETE FROM {upload} WHERE id = %s",
        "record_blob": (
            f"INSERT INTO {blob} (digest, size, {key}, created) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (digest) DO NOTHING RETURNING id"
        ),
        # Index used: the blob's unique digest.
        "existing_blob": f"SELECT id, size, {key} FROM {blob} WHERE digest = %s",
        "repository": f"SELECT id FROM {repository} WHERE name = %s",
        "create_repository": (
            f"INSERT INTO {repository} (name, created) VALUES (%s, %s) "
            "ON CONFLICT (name) DO NOTHING RETURNING id"
        ),
        # Index used: unique_repository_manifest.
        "insert_manifest": (
            f"INSERT INTO {manifest} (repository_id, digest, media_type, artifact_type, size, content, "
            "subject, annotations, created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (repository_id, digest) DO NOTHING RETURNING id"
        ),
        "manifest": f"SELECT id FROM {manifest} WHERE repository_id = %s AND digest = %s",
        # Index used: unique_repository_tag.
        "point_tag": (
            f"INSERT INTO {tag} (repository_id, name, manifest_id, updated) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (repository_id, name) DO UPDATE "
            "SET manifest_id = EXCLUDED.manifest_id, updated = EXCLUDED.updated"
        ),
    }


SQL = _sql()


def insert_upload(upload: Upload, name: str) -> int | None:
    """Insert session ``upload`` into repository ``name``: the repository's id, or None if there is
    no such repository."""
    created = _prepared(Upload, "created", upload.created)
    values = [
        _prepared(Upload, "id", upload.id),
        _prepared(Upload, "hash_state", upload.hash_state),
        _prepared(Upload, "storage_state", upload.storage_state),
        _prepared(Upload, "claim", upload.claim),
        _prepared(Upload, "claimed_until", upload.claimed_until),
        created,
        created,
        name,
    ]
    with connection.cursor() as cursor:
        cursor.execute(SQL["insert"], values)
        row = cursor.fetchone()
    return None if row is None else row[0]


def claim_upload(
    name: str, upload_id: uuid.UUID, start: int | None, claim_id: uuid.UUID, now: datetime, until: datetime
) -> Upload | None:
    """Claim session ``upload_id`` of repository ``name`` until ``until`` if no live claim holds it
    (and it is at offset ``start``, if given), and read it; None if it could not be claimed."""
    values = [
        _prepared(Upload, "claim", claim_id),
        _prepared(Upload, "claimed_until", until),
        _prepared(Upload, "id", upload_id),
        name,
        _prepared(Upload, "claimed_until", now),
    ]
    if start is not None:
        values.append(start)
    with connection.cursor() as cursor:
        cursor.execute(SQL["claim" if start is None else "claim_at_offset"], values)
        row = cursor.fetchone()
    if row is None:
        return None
    repository_id, offset, hash_state, storage_state = row
    return Upload(
        id=upload_id,
        # The name is what the request said and the statement checked: no query for the row.
        repository=Repository(id=repository_id, name=name),
        offset=offset,
        hash_state=bytes(hash_state),
        storage_state=Upload._meta.get_field("storage_state").from_db_value(storage_state, None, connection),
        claim=claim_id,
        claimed_until=until,
    )


def save_upload(upload: Upload, claim_id: uuid.UUID) -> bool:
    """Store the session's offset and states and drop claim ``claim_id``; False if it no longer holds."""
    values = [
        upload.offset,
        _prepared(Upload, "hash_state", upload.hash_state),
        _prepared(Upload, "storage_state", upload.storage_state),
        _prepared(Upload, "updated", timezone.now()),
        _prepared(Upload, "id", upload.id),
        _prepared(Upload, "claim", claim_id),
    ]
    return _rowcount(SQL["save"], values) == 1


def release_upload(upload_id: uuid.UUID, claim_id: uuid.UUID) -> None:
    _rowcount(SQL["release"], [_prepared(Upload, "id", upload_id), _prepared(Upload, "claim", claim_id)])


def delete_upload(upload_id: uuid.UUID) -> None:
    _rowcount(SQL["delete"], [_prepared(Upload, "id", upload_id)])


def record_blob(digest: str, size: int, key: str) -> Blob | None:
    """Insert the row of a newly stored blob; None if the digest has a row already."""
    created = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(SQL["record_blob"], [digest, size, key, _prepared(Blob, "created", created)])
        inserted = cursor.fetchone()
    if inserted is None:
        return None
    return Blob(id=inserted[0], digest=digest, size=size, key=key, created=created)


def existing_blob(digest: str) -> Blob | None:
    """The row of blob ``digest``, locked against gc's delete until the transaction ends (PostgreSQL)."""
    sql = SQL["existing_blob"]
    if connection.features.has_select_for_no_key_update:
        # NO KEY UPDATE: it excludes gc's FOR UPDATE, not the KEY SHARE that a concurrent manifest
        # PUT's foreign key takes at commit (FOR UPDATE deadlocked with that PUT's link insert).
        sql += " FOR NO KEY UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [digest])
        row = cursor.fetchone()
    return None if row is None else Blob(id=row[0], digest=digest, size=row[1], key=row[2])


def repository_id(name: str) -> int | None:
    rows = _rows(SQL["repository"], [name])
    return rows[0][0] if rows else None


def create_repository(name: str) -> int | None:
    """Create repository ``name`` unless it exists (safe under concurrent pushes): its id, whoever
    created it; None only if it was deleted again in between."""
    rows = _rows(SQL["create_repository"], [name, _prepared(Repository, "created", timezone.now())])
    return rows[0][0] if rows else repository_id(name)


def linked_blobs(repository_id: int, digests: Collection[str]) -> list[Linked]:
    """Which of ``digests`` are blobs of the repository."""
    if not digests:
        return []
    blobs, links = Blob._meta.db_table, RepositoryBlob._meta.db_table
    sql = (
        f"SELECT b.id, b.digest, b.size FROM {blobs} b JOIN {links} l ON l.blob_id = b.id "
        f"WHERE l.repository_id = %s AND b.digest IN ({_placeholders(len(digests))})"
    )
    return [Linked(*row) for row in _rows(sql, [repository_id, *digests])]


def manifests_in(repository_id: int, digests: Collection[str]) -> list[Linked]:
    """Which of ``digests`` are manifests of the repository."""
    if not digests:
        return []
    sql = (
        f"SELECT id, digest, 0 FROM {Manifest._meta.db_table} "
        f"WHERE repository_id = %s AND digest IN ({_placeholders(len(digests))})"
    )
    return [Linked(*row) for row in _rows(sql, [repository_id, *digests])]


def insert_manifest(repository_id: int, digest: str, content: bytes, parsed: ParsedManifest) -> int | None:
    """The id of the repository's manifest ``digest``, inserted unless it was there; None if it
    was there when the insert ran and is gone now (garbage collection deleted it in between)."""
    values = [
        repository_id,
        digest,
        parsed.media_type,
        parsed.artifact_type,
        len(content),
        _prepared(Manifest, "content", content),
        parsed.subject,
        _prepared(Manifest, "annotations", parsed.annotations),
        _prepared(Manifest, "created", timezone.now()),
    ]
    inserted = _rows(SQL["insert_manifest"], values)
    if inserted:
        return inserted[0][0]
    existing = _rows(SQL["manifest"], [repository_id, digest])
    return existing[0][0] if existing else None


def link_manifest(manifest_id: int, blob_ids: Collection[int], child_ids: Collection[int]) -> None:
    """Record what manifest ``manifest_id`` references: its blobs and, for an index, its manifests."""
    for table, columns, ids in (
        (ManifestBlob._meta.db_table, "manifest_id, blob_id", blob_ids),
        (ManifestChild._meta.db_table, "parent_id, child_id", child_ids),
    ):
        if ids:
            sql = f"INSERT INTO {table} ({columns}) VALUES {_tuples(len(ids), 2)} ON CONFLICT DO NOTHING"
            _rowcount(sql, [value for id_ in ids for value in (manifest_id, id_)])


def link_blobs(repository_id: int, blob_ids: Collection[int]) -> None:
    """Make blobs ``blob_ids`` visible in repository ``repository_id``; linking twice is harmless."""
    if not blob_ids:
        return
    created = _prepared(RepositoryBlob, "created", timezone.now())
    sql = (
        f"INSERT INTO {RepositoryBlob._meta.db_table} (repository_id, blob_id, created) "
        f"VALUES {_tuples(len(blob_ids), 3)} ON CONFLICT DO NOTHING"
    )
    _rowcount(sql, [value for id_ in blob_ids for value in (repository_id, id_, created)])


def point_tag(repository_id: int, name: str, manifest_id: int) -> None:
    """Create or move tag ``name`` in one statement (an upsert), safe under concurrent pushes."""
    _rowcount(SQL["point_tag"], [repository_id, name, manifest_id, _prepared(Tag, "updated", timezone.now())])


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


def _tuples(count: int, width: int) -> str:
    return ", ".join([f"({_placeholders(width)})"] * count)


def _rows(sql: str, values: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchall()


def _rowcount(sql: str, values: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.rowcount
