"""Upload sessions: insert, claim (and read), renew, save, release, find, delete.

Every write to a session is one conditional statement on its row: a claim
wins only if no live claim holds the session (and, for a chunk, only at the
offset it starts from), and saving or renewing only while the claim holds,
so two requests can never write one session at once (``registry.uploads``).
"""

import uuid
from datetime import datetime

from django.db import connection

from registry.db import audit, repositories
from registry.db.sql import Insert, Names, one, prepared, rowcount
from registry.events.models import AuditEvent
from registry.models import Repository, Upload

_u, _r = Names(Upload), Names(Repository)
_insert = Insert(Upload)
_STATE = ("repository", "offset", "hash_state", "storage_state")
_RETURNING = f" RETURNING {_u.of(*_STATE)}"
_UNCLAIMED = f"{_u.claim} = NULL, {_u.claimed_until} = NULL"
# PostgreSQL: the statement's own transaction commits without waiting for its WAL to reach the disk
# (``synchronous_commit`` off until its end, ``set_config(..., true)``; evaluated only for a row it
# writes). A session's progress is bookkeeping that a client can redo: a database that crashes
# within a fraction of a second of such a commit loses at most that progress (the client hears
# 404 or 416 and resumes or starts again), never a stored blob, manifest or tag, whose statements
# wait for the disk as before, and with them every earlier commit. About 0.2 ms a write here.
_RELAXED = " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"


def _statements(relaxed: str) -> dict[str, str]:
    """Each statement by name; ``relaxed``: ``_RELAXED`` in the writes that may take it, or ""."""
    claim = (
        f"UPDATE {_u} SET {_u.claim} = %s, {_u.claimed_until} = %s "
        f"WHERE {_u.id} = %s AND {_u.repository} = (SELECT {_r.id} FROM {_r} WHERE {_r.name} = %s) "
        f"AND ({_u.claim} IS NULL OR {_u.claimed_until} < %s)"
    )
    return {
        # Nothing is inserted if the repository does not exist yet: the caller creates it and retries.
        "insert": (
            _insert.select({"repository_id": _r.id}, f"FROM {_r} WHERE {_r.name} = %s{relaxed}")
            + f" RETURNING {_u.repository}"
        ),
        # Index used: the primary key, and the repository's unique name.
        "claim": claim + relaxed + _RETURNING,
        "claim_at_offset": claim + f" AND {_u.offset} = %s" + relaxed + _RETURNING,
        "renew": f"UPDATE {_u} SET {_u.claimed_until} = %s WHERE {_u.id} = %s AND {_u.claim} = %s{relaxed}",
        "save": (
            f"UPDATE {_u} SET {_u.offset} = %s, {_u.hash_state} = %s, {_u.storage_state} = %s, "
            f"{_u.updated} = %s, {_UNCLAIMED} WHERE {_u.id} = %s AND {_u.claim} = %s{relaxed}"
        ),
        "release": f"UPDATE {_u} SET {_UNCLAIMED} WHERE {_u.id} = %s AND {_u.claim} = %s{relaxed}",
        "delete": f"DELETE FROM {_u} WHERE {_u.id} = %s",
        "find": (
            f"SELECT {_u.of(*_STATE, 'claim', 'claimed_until', 'created', 'updated')} FROM {_u} "
            f"WHERE {_u.id} = %s AND {_u.repository} = (SELECT {_r.id} FROM {_r} WHERE {_r.name} = %s)"
        ),
    }


_SQL = {False: _statements(""), True: _statements(_RELAXED)}


def _sql(name: str) -> str:
    """Statement ``name``, relaxed on PostgreSQL unless a caller's transaction is open (its commit
    may hold writes that must wait for the disk)."""
    return _SQL[connection.vendor == "postgresql" and not connection.in_atomic_block][name]


# PostgreSQL, a session in a repository that does not exist yet: the repository, the audit row of its
# creation and the session in one statement. Nothing if the repository exists (another upload
# created it meanwhile): the caller inserts into it.
_CREATING = (
    f"WITH fresh AS ({repositories.CREATE}), audited AS ({audit.row_insert('FROM fresh')}) "
    + _insert.select({"repository_id": f"fresh.{_r.id}"}, "FROM fresh")
    + f" RETURNING {_u.repository}"
)


def insert_creating(upload: Upload, name: str, created: AuditEvent) -> int | None:
    """Create repository ``name``, record ``created`` (its creation's audit row) and insert session
    ``upload`` into it: the repository's id, or None if the repository existed (nothing written)."""
    row = {each.attname: getattr(upload, each.attname) for each in _insert.fields}
    if connection.vendor == "postgresql":
        params = [
            *repositories.create_params(name),
            *audit.row_params(created),
            *_insert.params([row], computed=["repository_id"]),
        ]
        inserted = one(_CREATING, params)
        return None if inserted is None else inserted[0]
    if repositories.insert(name) is None:
        return None
    audit.insert_row(created)
    return insert(upload, name)


def insert(upload: Upload, name: str) -> int | None:
    """Insert session ``upload`` into repository ``name``: the repository's id, or None if there is
    no such repository."""
    row = {each.attname: getattr(upload, each.attname) for each in _insert.fields}
    inserted = one(_sql("insert"), [*_insert.params([row], computed=["repository_id"]), name])
    return None if inserted is None else inserted[0]


def claim(
    name: str, upload_id: uuid.UUID, start: int | None, claim_id: uuid.UUID, now: datetime, until: datetime
) -> Upload | None:
    """Claim session ``upload_id`` of repository ``name`` until ``until`` if no live claim holds it
    (and it is at offset ``start``, if given), and read it; None if it could not be claimed."""
    params = [
        prepared(Upload, "claim", claim_id),
        prepared(Upload, "claimed_until", until),
        prepared(Upload, "id", upload_id),
        name,
        prepared(Upload, "claimed_until", now),
    ]
    if start is not None:
        params.append(start)
    row = one(_sql("claim" if start is None else "claim_at_offset"), params)
    if row is None:
        return None
    # The name is what the request said and the statement checked: no query for the row.
    return _session(upload_id, name, row, claim=claim_id, claimed_until=until)


def find(name: str, upload_id: str) -> Upload | None:
    """Session ``upload_id`` of repository ``name``, as it stands (claimed or not)."""
    session_id = uuid.UUID(upload_id)
    row = one(_sql("find"), [prepared(Upload, "id", session_id), name])
    if row is None:
        return None
    claims = ("claim", "claimed_until", "created", "updated")
    fields = {field: _from_db(Upload, field, value) for field, value in zip(claims, row[4:], strict=True)}
    return _session(session_id, name, row[:4], **fields)


def renew(upload_id: uuid.UUID, claim_id: uuid.UUID, until: datetime) -> bool:
    """Hold claim ``claim_id`` until ``until``; False if it no longer holds the session."""
    params = [
        prepared(Upload, "claimed_until", until),
        prepared(Upload, "id", upload_id),
        prepared(Upload, "claim", claim_id),
    ]
    return rowcount(_sql("renew"), params) == 1


def save(upload: Upload, claim_id: uuid.UUID) -> bool:
    """Store the session's offset and states and drop claim ``claim_id``; False if it no longer holds."""
    params = [
        upload.offset,
        prepared(Upload, "hash_state", upload.hash_state),
        prepared(Upload, "storage_state", upload.storage_state),
        prepared(Upload, "updated", Upload._meta.get_field("updated").get_default()),
        prepared(Upload, "id", upload.id),
        prepared(Upload, "claim", claim_id),
    ]
    return rowcount(_sql("save"), params) == 1


def release(upload_id: uuid.UUID, claim_id: uuid.UUID) -> None:
    rowcount(_sql("release"), [prepared(Upload, "id", upload_id), prepared(Upload, "claim", claim_id)])


def delete(upload_id: uuid.UUID) -> None:
    rowcount(_sql("delete"), [prepared(Upload, "id", upload_id)])


def _session(upload_id: uuid.UUID, name: str, state: tuple, **fields: object) -> Upload:
    repository_id, offset, hash_state, storage_state = state
    return Upload(
        id=upload_id,
        repository=Repository(id=repository_id, name=name),
        offset=offset,
        hash_state=bytes(hash_state),
        storage_state=_from_db(Upload, "storage_state", storage_state),
        **fields,
    )


def _from_db(model: type[Upload], name: str, value: object) -> object:
    """A value as the ORM would hand it over: converted by the field and the backend (SQLite gives a
    UUID as text, a time as a string)."""
    field = model._meta.get_field(name)
    column = field.get_col(model._meta.db_table)
    for converter in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
        value = converter(value, column, connection)
    return value
