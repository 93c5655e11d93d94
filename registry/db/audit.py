"""A push's audit row: one ``INSERT ... SELECT`` that reads what the tag named before the push moves it."""

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
_INSERT_PUSH = _insert.select(_COMPUTED, "")


def insert_push(row: AuditEvent, repository_id: int, tag: str | None) -> None:
    """Insert ``row`` (a push of ``row.digest``), its action and ``previous`` from the tag's row."""
    values = _insert.row({each.attname: getattr(row, each.attname) for each in _insert.fields})
    computed = {
        "previous": [repository_id, tag],
        "action": [repository_id, tag, row.digest, row.digest],
    }
    params = []
    prepared = iter(_insert.params([values], computed=computed))
    for each in _insert.fields:
        params += computed[each.attname] if each.attname in computed else [next(prepared)]
    rowcount(_INSERT_PUSH, params)
