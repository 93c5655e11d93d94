"""Webhook delivery as a thread of one of the server's workers, so ``make run`` needs no other command.

Unless ``CROW_WEBHOOK_WORKER=0`` (a fleet runs ``manage.py deliver_webhooks``
apart, once or a few times), ``crow.serve`` makes a lock file before granian
starts (``prepare``; its path in ``CROW_WEBHOOK_LOCK_FILE`` for the workers),
and each granian worker starts a thread at the start of its lifespan
(``Seat``) that takes the file's lock (``fcntl.lockf``, held by a process): the
worker that gets it runs ``deliver_webhooks``' loop (``registry.events.worker``)
in that thread, named ``crow-webhooks`` (``ps -T``, ``top -H``); the others try
again every ``TAKEOVER`` seconds. The kernel releases a lock with its process,
so a worker killed (``kill -9``, the out-of-memory killer) hands the delivery
to another, or to its own replacement, within ``TAKEOVER`` seconds. A loop that
raises starts again, after a pause that doubles while it keeps failing young.
On the lifespan's end the thread stops at its next look (within a second) or,
in the middle of a POST, is left to die with its process: a delivery cut short
is sent again once its claim expires (at least once).

A thread, not a process: a process of its own (forked from the loaded server,
with a keeper to fork it again when it died) held 24 MiB of the server's
proportional set size idle; the thread adds a few to one worker. Not a thread
of granian's main process: granian forks replacement workers from it, and a
fork taken while the delivery held a lock (libpq's, OpenSSL's, the logging
module's) would hand the new worker that lock, held forever.
"""

import contextlib
import ctypes
import fcntl
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable

from crow import env

log = logging.getLogger(__name__)

LOCK_FILE = "CROW_WEBHOOK_LOCK_FILE"  # set by crow.serve for its workers, not by operators
TAKEOVER = 2.0  # seconds between a worker's tries to take the delivery
RESTART_MAX = 30.0  # seconds between restarts of a loop that keeps failing at once
STOP_WAIT = 2.0  # seconds a worker's end waits for the thread
THREAD_NAME = "crow-webhooks"  # the thread's name in ps and top (15 bytes at most)
_PR_SET_NAME = 15


def enabled() -> bool:
    return env.boolean("CROW_WEBHOOK_WORKER", default=True)


def prepare() -> str:
    """In the server, before its workers start: the lock file, its path exported for them, removed at exit."""
    fd, path = tempfile.mkstemp(prefix="crow-webhooks-", suffix=".lock")
    os.close(fd)
    os.environ[LOCK_FILE] = path
    return path


def _name_thread(name: str) -> None:
    """The calling thread's name as the kernel shows it (Python 3.11 names only its own ``Thread``)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


class Seat:
    """The delivery's seat in one worker: a thread that takes the lock, then runs the loop until stopped."""

    def __init__(self, path: str, run: Callable[[Callable[[], bool]], None] | None = None) -> None:
        self.path = path
        self._run = run or _deliver
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._sit, name=THREAD_NAME, daemon=True)

    def start(self) -> "Seat":
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_WAIT) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _sit(self) -> None:
        try:
            # Made again if something removed it (a /tmp cleaner): a worker without it would never deliver.
            with os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), "r+b") as lock:
                while not self._take(lock):
                    if self._stopping.wait(TAKEOVER):
                        return
                _name_thread(THREAD_NAME)
                self._keep_running()
        except OSError as exc:  # the file cannot be made or locked
            log.warning("webhook worker: cannot take the delivery (%s)", exc)

    @staticmethod
    def _take(lock) -> bool:
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            return False
        return True

    def _keep_running(self) -> None:
        wait = 1.0
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._run(self._stopping.is_set)
            except Exception:
                log.exception("webhook worker: its loop failed")
            if self._stopping.is_set():
                return
            if time.monotonic() - started > RESTART_MAX:
                wait = 1.0  # it had run well: a new failure, not the same one again
            log.warning("webhook worker: starting its loop again in %.0fs", wait)
            self._stopping.wait(wait)
            wait = min(wait * 2, RESTART_MAX)


def _deliver(stopping: Callable[[], bool]) -> None:
    from registry.events import worker

    worker.run(stopping)


def seat() -> Seat | None:
    """In a worker: its seat, started, if the server runs the delivery (``prepare`` was called)."""
    path = os.environ.get(LOCK_FILE)
    return Seat(path).start() if path else None
