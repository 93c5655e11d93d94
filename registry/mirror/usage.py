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
_recorded: dict[int, float] = {}


def record_pull(repository_id: int) -> None:
    """Note that repository ``repository_id`` was pulled now (if not noted in the last few minutes)."""
    now = time.monotonic()
    with _lock:
        last = _recorded.get(repository_id)
        if last is not None and now - last < RECORD_EVERY:
            return
        if len(_recorded) >= _MEMORY_LIMIT:
            _recorded.clear()
        _recorded[repository_id] = now
    try:
        MirroredRepository.objects.filter(repository_id=repository_id).update(last_pulled=timezone.now())
    except DatabaseError as exc:
        log.warning("could not record a pull of mirrored repository %s: %s", repository_id, exc)


def forget() -> None:
    """Drop what this process remembers (tests)."""
    with _lock:
        _recorded.clear()
