"""Manifests and tags: the GET by tag or digest, a push's inserts, and sparse absent references.

A manifest GET is one indexed query (the repository's unique name, then
``unique_repository_tag`` or ``unique_repository_manifest``) that selects
only what the response needs. A manifest PUT (``registry.pushes``) writes
its row, its references, the absent references it resolves or records
(``registry.sparse``), the blob links again, its audit row and its tag: on
PostgreSQL in one statement (``store``), on SQLite as a transaction of one
statement each.
"""

from collections.abc import Collection
from typing import NamedTuple

from registry.db import audit
from registry.db.blobs import Linked
from registry.db.sql import Insert, Names, ignore_conflict, one, placeholders, rowcount, rows
from registry.events.models import AuditEvent
from registry.manifests import ParsedManifest
from registry.models import (
    AbsentReference,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    Tag,
)


class ServedManifest(NamedTuple):
    """What a manifest GET or HEAD answers with."""

    media_type: str
    digest: str
    size: int
    content: bytes  # empty when asked without it (HEAD)


def _served() -> dict[tuple[bool, bool], str]:
    r, m, t = Names(Repository, "r"), Names(Manifest, "m"), Names(Tag, "t")
    by_tag = (
        f"FROM {r} JOIN {t} ON {t.repository} = {r.id} JOIN {m} ON {m.id} = {t.manifest} "
        f"WHERE {r.name} = %s AND {t.name} = %s"
    )
    by_digest = f"FROM {r} JOIN {m} ON {m.repository} = {r.id} WHERE {r.name} = %s AND {m.digest} = %s"
    head, get = (
        f"SELECT {m.of('media_type', 'digest', 'size')} ",
        f"SELECT {m.of('media_type', 'digest', 'size', 'content')} ",
    )
    # Keyed by (by digest, with content).
    return {
        (False, True): get + by_tag,
        (False, False): head + by_tag,
        (True, True): get + by_digest,
        (True, False): head + by_digest,
    }


_SERVED = _served()
_m, _a = Names(Manifest), Names(AbsentReference)
_manifest, _tag = Insert(Manifest), Insert(Tag)
_blobs, _children, _absent = Insert(ManifestBlob), Insert(ManifestChild), Insert(AbsentReference)
# Index used: unique_repository_manifest.
_INSERT = f"{_manifest.values()} {ignore_conflict(Manifest, 'unique_repository_manifest')} RETURNING {_m.id}"
_ID = f"SELECT {_m.id} FROM {_m} WHERE {_m.repository} = %s AND {_m.digest} = %s"
# Index used: unique_repository_tag.
_POINT_TAG = f"{_tag.values()} {_tag.update_others('unique_repository_tag')}"
# Index used: absent_reference_digest. Most pushes find nothing: one statement.
_RESOLVE = (
    f"DELETE FROM {_a} WHERE {_a.digest} = %s AND {_a.kind} = %s "
    f"AND {_a.manifest} IN (SELECT {_m.id} FROM {_m} WHERE {_m.repository} = %s) RETURNING {_a.manifest}"
)

_link = Insert(RepositoryBlob)
_IDS = "unnest(%s::bigint[])"
_ON = {"manifest_id": "chosen.stored"}


def _store_sql(tagged: bool) -> str:
    """``store``'s statement: each step a data-modifying ``WITH`` query; all of them see the snapshot
    the statement began with (the audit row reads the tag's manifest before the tag moves)."""
    steps = [
        f"inserted AS ({_INSERT})",
        f"existing AS (SELECT {_m.id} FROM {_m} WHERE {_m.repository} = %s AND {_m.digest} = %s "
        "AND NOT EXISTS (SELECT FROM inserted))",
        f"chosen (stored) AS (SELECT {_m.id} FROM inserted UNION ALL SELECT {_m.id} FROM existing)",
        f"blobs AS ({_blobs.select({**_ON, 'blob_id': _IDS}, 'FROM chosen')} ON CONFLICT DO NOTHING)",
        f"children AS ({_children.select({'parent_id': 'chosen.stored', 'child_id': _IDS}, 'FROM chosen')} "
        "ON CONFLICT DO NOTHING)",
        f"absent AS ({_absent.select(_ABSENT, _ABSENT_FROM)} ON CONFLICT DO NOTHING)",
        f"resolved AS ({_RESOLVE})",
        f"adopted AS ({_children.select(_ADOPTED, 'FROM resolved, chosen')} ON CONFLICT DO NOTHING)",
        f"relinked AS ({_link.select({'blob_id': _IDS}, '')} ON CONFLICT DO NOTHING)",
        f"audited AS ({audit.push_row('FROM chosen')})",
    ]
    if tagged:
        steps.append(
            f"tagged AS ({_tag.select(_ON, 'FROM chosen')} {_tag.update_others('unique_repository_tag')})"
        )
    return "WITH " + ", ".join(steps) + " SELECT stored FROM chosen"


_ABSENT = {**_ON, "digest": "missing.named", "kind": "missing.sort"}
_ABSENT_FROM = "FROM chosen, unnest(%s::text[], %s::text[]) AS missing (named, sort)"
_ADOPTED = {"parent_id": f"resolved.{_a.manifest}", "child_id": "chosen.stored"}
_STORE = {tagged: _store_sql(tagged) for tagged in (False, True)}


def served(
    name: str, tag: str | None = None, digest: str | None = None, content: bool = True
) -> ServedManifest | None:
    """Manifest ``digest``, or the one ``tag`` points at, in repository ``name``; its bytes if ``content``."""
    row = one(_SERVED[digest is not None, content], [name, tag if digest is None else digest])
    if row is None:
        return None
    return ServedManifest(row[0], row[1], row[2], bytes(row[3]) if content else b"")


def among(repository_id: int, digests: Collection[str]) -> list[Linked]:
    """Which of ``digests`` are manifests of the repository."""
    if not digests:
        return []
    sql = (
        f"SELECT {_m.of('id', 'digest')}, 0 FROM {_m} "
        f"WHERE {_m.repository} = %s AND {_m.digest} IN ({placeholders(len(digests))})"
    )
    return [Linked(*row) for row in rows(sql, [repository_id, *digests])]


def insert(repository_id: int, digest: str, content: bytes, parsed: ParsedManifest) -> int | None:
    """The id of the repository's manifest ``digest``, inserted unless it was there; None if it
    was there when the insert ran and is gone now (garbage collection deleted it in between)."""
    inserted = rows(_INSERT, _manifest.params([_manifest_row(repository_id, digest, content, parsed)]))
    if inserted:
        return inserted[0][0]
    existing = rows(_ID, [repository_id, digest])
    return existing[0][0] if existing else None


def link_references(manifest_id: int, blob_ids: Collection[int], child_ids: Collection[int]) -> None:
    """Record what manifest ``manifest_id`` references: its blobs and, for an index, its manifests."""
    if blob_ids:
        links = [_blobs.row({"manifest_id": manifest_id, "blob_id": id_}) for id_ in blob_ids]
        rowcount(f"{_blobs.values(len(links))} ON CONFLICT DO NOTHING", _blobs.params(links))
    if child_ids:
        links = [_children.row({"parent_id": manifest_id, "child_id": id_}) for id_ in child_ids]
        rowcount(f"{_children.values(len(links))} ON CONFLICT DO NOTHING", _children.params(links))


def point_tag(repository_id: int, name: str, manifest_id: int) -> None:
    """Create or move tag ``name`` in one statement (an upsert), safe under concurrent pushes."""
    row = _tag.row({"repository_id": repository_id, "name": name, "manifest_id": manifest_id})
    rowcount(_POINT_TAG, _tag.params([row]))


def record_absent(manifest_id: int, blobs: Collection[str], children: Collection[str]) -> None:
    """Keep the absent references of manifest ``manifest_id`` (pushing it twice is harmless)."""
    kinds = [(digest, AbsentReference.BLOB) for digest in blobs]
    kinds += [(digest, AbsentReference.MANIFEST) for digest in children]
    if kinds:
        absent = [_absent.row({"manifest_id": manifest_id, "digest": d, "kind": k}) for d, k in kinds]
        rowcount(f"{_absent.values(len(absent))} ON CONFLICT DO NOTHING", _absent.params(absent))


def resolve_absent(repository_id: int, digest: str, manifest_id: int) -> None:
    """Manifest ``digest`` (id ``manifest_id``) is in the repository now: the indexes there that named
    it as absent get it as a child. Called in the transaction that stores it."""
    parents = [row[0] for row in rows(_RESOLVE, [digest, AbsentReference.MANIFEST, repository_id])]
    if parents:
        links = [_children.row({"parent_id": parent, "child_id": manifest_id}) for parent in parents]
        rowcount(f"{_children.values(len(links))} ON CONFLICT DO NOTHING", _children.params(links))


def store(
    repository_id: int,
    digest: str,
    content: bytes,
    parsed: ParsedManifest,
    references: tuple[Collection[int], Collection[int]],
    absent: tuple[Collection[str], Collection[str]],
    tag: str | None,
    audit_row: AuditEvent,
) -> int | None:
    """PostgreSQL: store manifest ``digest`` in one statement, as the SQLite path's transaction does:
    its row (or the one there), its references (blob ids, child manifest ids), its ``absent``
    references (blob digests, child digests), the indexes' absent references it resolves, the blob
    links again, ``audit_row`` and tag ``tag``. The manifest's id; None if the statement's snapshot
    missed a row another push committed after it began (it then wrote nothing): run it again."""
    blob_ids, child_ids = (list(ids) for ids in references)
    kinds = [AbsentReference.BLOB] * len(absent[0]) + [AbsentReference.MANIFEST] * len(absent[1])
    params = [
        *_manifest.params([_manifest_row(repository_id, digest, content, parsed)]),
        repository_id,
        digest,
        *_blobs.select_params({}, {"manifest_id": [], "blob_id": [blob_ids]}),
        *_children.select_params({}, {"parent_id": [], "child_id": [child_ids]}),
        *[[*absent[0], *absent[1]], kinds],
        digest,
        AbsentReference.MANIFEST,
        repository_id,
        *_link.select_params({"repository_id": repository_id}, {"blob_id": [blob_ids]}),
        *audit.push_params(audit_row, repository_id, tag),
    ]
    if tag:
        params += _tag.select_params({"repository_id": repository_id, "name": tag}, {"manifest_id": []})
    row = one(_STORE[bool(tag)], params)
    return None if row is None else row[0]


def _manifest_row(repository_id: int, digest: str, content: bytes, parsed: ParsedManifest) -> dict:
    return _manifest.row(
        {
            "repository_id": repository_id,
            "digest": digest,
            "media_type": parsed.media_type,
            "artifact_type": parsed.artifact_type,
            "size": len(content),
            "content": content,
            "subject": parsed.subject,
            "annotations": parsed.annotations,
        }
    )
