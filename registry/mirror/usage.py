"""When a mirrored repository was last pulled, recorded cheaply (``gc`` removes what nobody pulls).

``record_pull`` is called on every manifest GET/HEAD of a mirrored repository
(Django's views and the fast path). It writes at most one UPDATE per
repository per ``RECORD_EVERY`` seconds per process: ``last_pulled`` is
accurate to that, which is plenty for an ``unused_days`` counted in days. The
time of the last write is kept in process memory; a failed write is logged and
forgotten (a pull never fails for its bookkeeping).
"""

import logging
import threading
import time

from django.db import DatabaseError
from django.utils import timezone

from registry.mirror.models import MirroredRepository

log = logging.getLogger(__name__)

RECORD_EVERY = 300.0  # seconds
_MEMORY_LIMIT = 100_000  # repositories remembered; past it the memory starts over

_lock = threading.Lock()
_recorded: dict[int | str, float] = {}


def record_pull(repository_id: int) -> None:
    """Note that repository ``repository_id`` was pulled now (if not noted in the last few minutes)."""
    if due(repository_id):
        _write(MirroredRepository.objects.filter(repository_id=repository_id), repository_id)


def record_pull_of(name: str) -> None:
    """``record_pull`` by the repository's name (for callers that do not know its id)."""
    if due(name):
        write_pull_of(name)


def due(key: int | str) -> bool:
    """Whether a pull of ``key`` (an id or a name) is to be written now; if so, it counts as written
    (no query: the fast path asks on the event loop, and writes with ``write_pull_of`` in a thread)."""
    now = time.monotonic()
    with _lock:
        last = _recorded.get(key)
        if last is not None and now - last < RECORD_EVERY:
            return False
        if len(_recorded) >= _MEMORY_LIMIT:
            _recorded.clear()
        _recorded[key] = now
    return True


def write_pull_of(name: str) -> None:
    _write(MirroredRepository.objects.filter(repository__name=name), name)


def _write(rows, key: int | str) -> None:
    try:
        rows.update(last_pulled=timezone.now())
    except DatabaseError as exc:
        log.warning("could not record a pull of mirrored repository %s: %s", key, exc)


def forget() -> None:
    """Drop what this process remembers (tests)."""
    with _lock:
        _recorded.clear()
