"""Recording what happened: one audit row per change, in the change's own transaction.

Domain code says what happened (``record(DELETE_TAG, repository=..., reference=...)``);
who did it comes from the context the edge set around the request
(``acting``): the /v2/ endpoint's caller, the management API's or the admin's
user, or ``system:gc`` for garbage collection. With no context the actor is
``system`` (a management command, a shell).

A push is the hot path: its row is one ``INSERT ... SELECT`` that also reads
what the tag named before (``registry.db.audit``), so a tag move costs no
extra round trip either.
"""

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from registry.db import audit as audit_rows
from registry.db import repositories
from registry.events.models import CREATE_REPOSITORY, HOOKED, AuditEvent

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Actor:
    name: str
    address: str = ""


SYSTEM = Actor("system")
GC = Actor("system:gc")
RETENTION = Actor("system:retention")

# An actor, or a function that finds it when a change is recorded (the admin's user is looked up
# from the session only if the request changes something).
_current: ContextVar[Actor | Callable[[], Actor]] = ContextVar("crow_audit_actor", default=SYSTEM)


@contextlib.contextmanager
def acting(actor: Actor | Callable[[], Actor]) -> Iterator[None]:
    """Changes recorded inside are ``actor``'s; the previous actor is back after (threads are reused)."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Actor:
    actor = _current.get()
    return actor if isinstance(actor, Actor) else actor()


def event(action: str, actor: Actor | None = None, **fields: Any) -> AuditEvent:
    """An unsaved row for ``action`` by ``actor`` (else the current one), for ``record_all``."""
    actor = actor or current()
    return AuditEvent(
        action=action, actor=actor.name, address=actor.address, pending=action in HOOKED, **fields
    )


def record(action: str, actor: Actor | None = None, **fields: Any) -> None:
    """One row: ``repository``, ``reference``, ``digest``, ``detail`` ... as the action has them."""
    event(action, actor, **fields).save(force_insert=True)


def record_all(events: list[AuditEvent]) -> None:
    """Several rows of one change, in one INSERT."""
    if events:
        AuditEvent.objects.bulk_create(events)


def pushed(name: str, tag: str | None, digest: str, media_type: str, size: int, repository_id: int) -> None:
    """A manifest pushed (and tagged): ``push``, or ``tag_move`` when the tag named another manifest.

    Called before the tag is pointed, in the push's transaction.
    """
    row = event("push", repository=name, reference=tag or "", digest=digest, media_type=media_type, size=size)
    audit_rows.insert_push(row, repository_id, tag)


def create_repository(name: str) -> int | None:
    """Create repository ``name`` unless it exists (recorded if this call created it); its id, or None
    if it was created and deleted again in between."""
    created = repositories.insert(name)
    if created is not None:
        record(CREATE_REPOSITORY, repository=name)
        return created
    return repositories.id_of(name)
