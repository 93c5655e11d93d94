"""Audit rows as steps of a change's own statement: a push's row, which reads what the tag named
before the push moves it, and any other row (``insert_row``)."""

from typing import Any

from registry.db.sql import Insert, Names, rowcount
from registry.events.models import PUSH, TAG_MOVE, AuditEvent
from registry.models import Manifest, Tag

_insert, _t, _m = Insert(AuditEvent), Names(Tag, "t"), Names(Manifest, "m")
# Index used: unique_repository_tag. Read in the statement that writes the row, before point_tag.
_PREVIOUS = (
    f"(SELECT {_m.digest} FROM {_t} JOIN {_m} ON {_m.id} = {_t.manifest} "
    f"WHERE {_t.repository} = %s AND {_t.name} = %s)"
)
_COMPUTED = {
    "previous": f"COALESCE({_PREVIOUS}, '')",
    "action": f"CASE WHEN COALESCE({_PREVIOUS}, %s) = %s THEN '{PUSH}' ELSE '{TAG_MOVE}' END",
}


def push_row(source: str) -> str:
    """The INSERT of a push's row, selected ``source`` (``FROM ...``, or "" for exactly one row)."""
    return _insert.select(_COMPUTED, source)


_INSERT_PUSH = push_row("")


def push_params(row: AuditEvent, repository_id: int, tag: str | None) -> list[Any]:
    """The parameters of ``push_row``: ``row`` (a push of ``row.digest``), and what its action and
    ``previous`` read from the tag's row."""
    computed = {
        "previous": [repository_id, tag],
        "action": [repository_id, tag, row.digest, row.digest],
    }
    given = {name: value for name, value in _values(row).items() if name not in computed}
    return _insert.select_params(given, computed)


def insert_push(row: AuditEvent, repository_id: int, tag: str | None) -> None:
    """Insert ``row`` (a push of ``row.digest``), its action and ``previous`` from the tag's row."""
    rowcount(_INSERT_PUSH, push_params(row, repository_id, tag))


def row_insert(source: str) -> str:
    """The INSERT of an audit row selected ``source`` (``FROM ...``); its parameters: ``row_params``."""
    return _insert.select({}, source)


def row_params(row: AuditEvent) -> list[Any]:
    return _insert.select_params(_values(row), {})


def insert_row(row: AuditEvent) -> None:
    rowcount(_insert.values(), _insert.params([_values(row)]))


def _values(row: AuditEvent) -> dict[str, Any]:
    """Each column's value in the unsaved ``row``, by attname."""
    return {each.attname: getattr(row, each.attname) for each in _insert.fields}
