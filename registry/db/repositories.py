"""Repositories: found by name, or created by the first push (safe under concurrent pushes)."""

from registry.db.sql import Insert, Names, ignore_conflict, one, rows
from registry.models import Repository

_r, _insert = Names(Repository), Insert(Repository)
# Index used: the repository's unique name.
_ID = f"SELECT {_r.id} FROM {_r} WHERE {_r.name} = %s"
# Also a step of statements that do more (``registry.db.uploads``), with ``create_params``.
CREATE = f"{_insert.values()} {ignore_conflict(Repository, 'name')} RETURNING {_r.id}"


def id_of(name: str) -> int | None:
    row = one(_ID, [name])
    return None if row is None else row[0]


def create(name: str) -> int | None:
    """Create repository ``name`` unless it exists: its id, whoever created it; None only if it was
    deleted again in between."""
    return insert(name) or id_of(name)


def insert(name: str) -> int | None:
    """Create repository ``name``: its id if this call created it, None if it existed."""
    created = rows(CREATE, create_params(name))
    return created[0][0] if created else None


def get_or_create(name: str) -> Repository:
    """Repository ``name`` (its id and name), created if missing."""
    repository_id = id_of(name) or create(name)
    if repository_id is None:  # created and deleted again by an operator, in between
        raise Repository.DoesNotExist(f"repository {name} was deleted meanwhile")
    return Repository(id=repository_id, name=name)


def create_params(name: str) -> list:
    """The parameters of ``CREATE`` for repository ``name``."""
    return _insert.params([_insert.row({"name": name})])
