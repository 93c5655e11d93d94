"""The push path's statements, as fixed SQL: an upload session's row and the blob it becomes.

A push costs every blob a POST, a PATCH and a PUT, each a few statements on
one row. Built by the ORM (querysets, ``RawQuerySet``, ``bulk_create``), a
quarter of a small push's CPU went into compiling those statements and
building model instances from their rows; these are written once, portable
between PostgreSQL and SQLite, and return only what the caller uses. With
``CROW_DB_PREPARE`` psycopg prepares them, as it does the pull path's
(``registry.hotpath``).

Values are prepared for the database by their model field (a UUID is
``uuid`` on PostgreSQL and hex text on SQLite, a JSON value ``jsonb`` or text).
"""

import uuid
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from registry.models import Blob, Repository, RepositoryBlob, Upload


def _prepared(model, field: str, value: Any) -> Any:
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _sql() -> dict[str, str]:
    upload, repository = Upload._meta.db_table, Repository._meta.db_table
    blob, link = Blob._meta.db_table, RepositoryBlob._meta.db_table
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
        "link": (
            f"INSERT INTO {link} (repository_id, blob_id, created) VALUES (%s, %s, %s) "
            "ON CONFLICT (repository_id, blob_id) DO NOTHING"
        ),
    }


SQL = _sql()


def insert(upload: Upload, name: str) -> int | None:
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


def claim(
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


def save(upload: Upload, claim_id: uuid.UUID) -> bool:
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


def release(upload_id: uuid.UUID, claim_id: uuid.UUID) -> None:
    _rowcount(SQL["release"], [_prepared(Upload, "id", upload_id), _prepared(Upload, "claim", claim_id)])


def delete(upload_id: uuid.UUID) -> None:
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


def link(repository_id: int, blob_id: int) -> None:
    """Make blob ``blob_id`` visible in repository ``repository_id``; linking twice is harmless."""
    _rowcount(SQL["link"], [repository_id, blob_id, _prepared(RepositoryBlob, "created", timezone.now())])


def _rowcount(sql: str, values: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.rowcount
