"""A deadline on every wait for PostgreSQL, enforced from outside the waiting thread.

``statement_timeout`` ends a query that the server runs too long, and libpq's
``tcp_user_timeout`` a connection whose peer stops acknowledging bytes. Neither
ends a wait for a peer that acknowledges and never answers: a proxy or a load
balancer in front of a hung database, a network path blackholed behind one.
A thread stuck there would hold its request, and soon every thread of the
worker, for as long as the operating system keeps the connection: minutes.

So each call that waits for the server (a query through Django's cursors,
``COMMIT``, ``ROLLBACK``, and the ``SELECT 1`` of Django's usability check)
registers its connection's socket and a deadline here, and one watchdog thread
per process wakes every ``TICK`` and shuts down the socket of any call past its
deadline: psycopg's wait ends at once with ``OperationalError``, which every
route answers as a 503 with ``Retry-After``, and Django drops the connection.

The deadline is the query bound plus ``GRACE``: while the server is reachable,
its own ``statement_timeout`` ends the query first and keeps the connection.
Cost per call: a clock read, a dict store, and an uncontended lock to remove
the entry (so the watchdog never shuts a descriptor that was since reused).
"""

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

TICK = 0.5  # seconds between the watchdog's looks; a stuck call ends at most this late
GRACE = 1.0  # seconds past the server's own statement_timeout before the socket is cut
_INSTALLED = "_crow_deadlines"


class Watchdog:
    """Which thread waits on which socket until when, and the thread that enforces it."""

    def __init__(self, tick: float = TICK) -> None:
        self._tick = tick
        self._waits: dict[int, tuple[int, float]] = {}  # thread id -> (socket descriptor, deadline)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget)

    def start(self, fd: int, seconds: float) -> int:
        """Watch the calling thread's wait on ``fd``; returns the key that ``stop`` takes."""
        if self._thread is None:
            self._spawn()
        key = threading.get_ident()
        self._waits[key] = (fd, time.monotonic() + seconds)
        return key

    def stop(self, key: int) -> None:
        with self._lock:
            self._waits.pop(key, None)

    def cut_overdue(self) -> int:
        """Shut down the socket of every wait past its deadline; returns how many."""
        now = time.monotonic()
        cut = 0
        with self._lock:
            for key, (fd, deadline) in list(self._waits.items()):
                if deadline <= now:
                    del self._waits[key]
                    _shut_down(fd)
                    cut += 1
        return cut

    def _spawn(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="crow-db-watchdog", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self._tick)
            self.cut_overdue()

    def _forget(self) -> None:
        # A forked child has none of its parent's threads, nor its waits.
        self._lock = threading.Lock()
        self._waits = {}
        self._thread = None


WATCHDOG = Watchdog()


def install(connection: BaseDatabaseWrapper, seconds: float) -> None:
    """Bound every wait of ``connection`` (a PostgreSQL connection) by ``seconds`` + ``GRACE``.

    Idempotent: Django sends ``connection_created`` at each reconnection of the same wrapper.
    """
    if getattr(connection, _INSTALLED, False):
        return
    limit = seconds + GRACE

    def bounded_execute(execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        return _watched(connection, limit, execute, sql, params, many, context)

    # First in the list, so that a caller's ``with connection.execute_wrapper(...)`` pops its own.
    connection.execute_wrappers.insert(0, bounded_execute)
    # Not queries to Django's wrappers, and waits all the same.
    for name in ("_commit", "_rollback", "is_usable"):
        setattr(connection, name, _bounded(connection, getattr(connection, name), limit))
    setattr(connection, _INSTALLED, True)


def _bounded(connection: BaseDatabaseWrapper, call: Callable[[], Any], limit: float) -> Callable[[], Any]:
    def bounded() -> Any:
        return _watched(connection, limit, call)

    return bounded


def _watched(connection: BaseDatabaseWrapper, limit: float, call: Callable, *args: Any) -> Any:
    try:
        fd = connection.connection.fileno()
    except Exception:  # no connection, or one that psycopg knows is lost: the call fails at once
        return call(*args)
    key = WATCHDOG.start(fd, limit)
    try:
        return call(*args)
    finally:
        WATCHDOG.stop(key)


def _shut_down(fd: int) -> None:
    """End every wait on the socket ``fd`` without closing the descriptor its owner still holds."""
    try:
        duplicate = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    with duplicate, contextlib.suppress(OSError):
        duplicate.shutdown(socket.SHUT_RDWR)
