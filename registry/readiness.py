"""Whether this process can serve requests: the database and the blob store answer, within a bound.

``failures()`` runs each check (``SELECT 1``; the store's ``probe``) in a
thread of its own small pool and waits at most ``TIMEOUT`` seconds for them
together. A check that has not answered is a failure, and it is not started
again while it still runs: probes that come every second against a hung
database share the one check in flight instead of piling up threads and
connections; the first probe after it ends starts a new one.
"""

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.db import close_old_connections, connection

from registry.db import connections
from registry.storage import blob_store

TIMEOUT = 2.0  # seconds, for all checks together

_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="crow-ready")
_running: dict[str, Future] = {}
_lock = threading.Lock()


def database() -> None:
    close_old_connections()  # a connection that failed before is not reused
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connections.release()


def storage() -> None:
    blob_store().probe()


CHECKS = {"database": database, "storage": storage}


def failures(timeout: float = TIMEOUT) -> dict[str, str]:
    """What failed, by check, with why; empty when the process is ready."""
    started = {name: _start(name, check) for name, check in CHECKS.items()}
    deadline = time.monotonic() + timeout
    failed = {}
    for name, future in started.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            failed[name] = f"no answer within {timeout:g} s"
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    return failed


def _start(name: str, check) -> Future:
    with _lock:
        future = _running.get(name)
        if future is None or future.done():
            future = _running[name] = _executor.submit(check)
        return future
