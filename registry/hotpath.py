"""The pull path's reads, as fixed SQL: one indexed query each, no ORM on the way.

A manifest GET or blob HEAD is a lookup of a few columns by unique keys. Built
by the ORM, half of such a request's CPU went into compiling the query
(filters, joins, the ``ORDER BY`` of ``.first()``); these statements are
written once, portable between PostgreSQL and SQLite, and select only what the
response needs. With ``CROW_DB_PREPARE`` (PostgreSQL) psycopg prepares them
on each connection, so the server stops re-planning them too.

Writes and everything else keep the ORM (``registry.models``).
"""

from typing import NamedTuple

from django.db import connection

from registry.models import Blob, Manifest, Repository, RepositoryBlob, Tag


class ManifestRow(NamedTuple):
    media_type: str
    digest: str
    size: int
    content: bytes  # empty when asked without it (HEAD)


class BlobRow(NamedTuple):
    size: int
    key: str


def _sql() -> dict[str, str]:
    repository, manifest, tag = Repository._meta.db_table, Manifest._meta.db_table, Tag._meta.db_table
    blob, link = Blob._meta.db_table, RepositoryBlob._meta.db_table
    # Index used: the repository's unique name, then unique_repository_tag or unique_repository_manifest.
    by_tag = (
        f"FROM {repository} r JOIN {tag} t ON t.repository_id = r.id "
        f"JOIN {manifest} m ON m.id = t.manifest_id WHERE r.name = %s AND t.name = %s"
    )
    by_digest = (
        f"FROM {repository} r JOIN {manifest} m ON m.repository_id = r.id WHERE r.name = %s AND m.digest = %s"
    )
    head, get = "SELECT m.media_type, m.digest, m.size ", "SELECT m.media_type, m.digest, m.size, m.content "
    return {
        "manifest_by_tag": get + by_tag,
        "manifest_by_tag_head": head + by_tag,
        "manifest_by_digest": get + by_digest,
        "manifest_by_digest_head": head + by_digest,
        # Index used: the blob's unique digest, then unique_repository_blob.
        "blob": (
            f'SELECT b.size, b."key" FROM {blob} b JOIN {link} l ON l.blob_id = b.id '
            f"JOIN {repository} r ON r.id = l.repository_id WHERE r.name = %s AND b.digest = %s"
        ),
    }


SQL = _sql()


def manifest(
    name: str, tag: str | None = None, digest: str | None = None, content: bool = True
) -> ManifestRow | None:
    """Manifest ``digest``, or the one ``tag`` points at, in repository ``name``; its bytes if ``content``."""
    query = "manifest_by_tag" if digest is None else "manifest_by_digest"
    row = _one(SQL[query if content else query + "_head"], (name, tag if digest is None else digest))
    if row is None:
        return None
    return ManifestRow(row[0], row[1], row[2], bytes(row[3]) if content else b"")


def blob(name: str, digest: str) -> BlobRow | None:
    """The blob ``digest`` if it is linked into repository ``name``."""
    row = _one(SQL["blob"], (name, digest))
    return None if row is None else BlobRow(row[0], row[1])


def _one(sql: str, params: tuple[str, ...]) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()
