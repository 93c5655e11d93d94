"""The locks that keep maintenance commands (gc, backup, restore) out of each other's way.

A module of its own below ``registry.gc`` and ``registry.backup``: both take
these locks, and neither package should import the other for them.

Two locks, each a PostgreSQL session advisory lock (on a key of its own) or,
on SQLite, an ``flock`` on a file beside the database; the system frees
either when the process dies, so a killed command never leaves one behind.

- ``GC``: one gc at a time, and no gc while a restore runs (a restore writes
  blobs before the rows that name them commit: gc's storage sweep would take
  them for garbage, and its manifest phase would race a merge). Taken
  exclusive, without waiting, by gc for its whole run and by restore for its
  whole run.
- ``BLOBS``: a backup holds it *shared* from before its snapshot until it has
  copied every blob the snapshot names; gc holds it *exclusive* while it
  deletes blob rows and bytes (its blob phase and its storage sweep). So no
  blob a running backup's snapshot names can go, and a backup that starts
  while gc deletes waits for the deletions to commit and then snapshots
  without the deleted blobs. Any number of backups share it.

Waits poll a non-blocking attempt (never a blocking lock call): a statement
timeout cannot cut them short, and the deadline is ours. (Behind a PgBouncer
in transaction pooling mode, point these commands at PostgreSQL directly:
session locks need the session.)
"""

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO

from django.db import DatabaseError, connection

POLL_SECONDS = 0.5
EX_TEMPFAIL = 75  # sysexits.h: the exit status of a command that gave up on a lock: try again later
# How long gc waits for running backups, and a backup for gc's deletions, by default: a nightly gc and
# a nightly backup that overlap both succeed. Longer than either should take; each command has --wait.
DEFAULT_WAIT = timedelta(hours=6)


@dataclass(frozen=True)
class Lock:
    name: str  # in messages
    key: int  # PostgreSQL's advisory lock key
    suffix: str  # SQLite: the lock file is the database's path plus this


GC = Lock("the gc lock", 0x63726F776763, "gc-lock")  # "crowgc"
BLOBS = Lock("the backup lock", 0x63726F77626B, "backup-lock")  # "crowbk"


class Busy(Exception):
    """Someone else holds the lock (for longer than the caller would wait)."""


@contextlib.contextmanager
def hold(
    lock: Lock,
    *,
    shared: bool = False,
    wait: float = 0.0,
    waiting: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Hold ``lock`` for the block; raise ``Busy`` if it cannot be had within ``wait`` seconds.

    ``waiting`` is called once, when the first attempt fails and the caller waits.
    """
    if connection.vendor == "postgresql":
        acquire, release = _advisory(lock, shared)
        _acquire(acquire, wait, waiting, lock)
        try:
            yield
        finally:
            release()
        return
    with open(Path(f"{connection.settings_dict['NAME']}.{lock.suffix}"), "a") as file:
        _acquire(_flock(file, shared), wait, waiting, lock)
        yield  # closing the file releases the lock


def take(
    lock: Lock,
    *,
    shared: bool = False,
    wait: float = 0.0,
    waiting: Callable[[], None] | None = None,
) -> contextlib.ExitStack:
    """``hold``, acquired now (or ``Busy`` now): the returned stack releases it when its block ends.

    For callers that handle ``Busy`` and must not catch it from their own block.
    """
    stack = contextlib.ExitStack()
    stack.enter_context(hold(lock, shared=shared, wait=wait, waiting=waiting))
    return stack


def _acquire(
    attempt: Callable[[], bool], wait: float, waiting: Callable[[], None] | None, lock: Lock
) -> None:
    deadline = time.monotonic() + wait
    if attempt():
        return
    if waiting is not None and wait > 0:
        waiting()
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(POLL_SECONDS, remaining))
        if attempt():
            return
    raise Busy(f"{lock.name} is held by another process")


def _advisory(lock: Lock, shared: bool) -> tuple[Callable[[], bool], Callable[[], None]]:
    kind = "_shared" if shared else ""

    def acquire() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_try_advisory_lock{kind}(%s)", [lock.key])
            return cursor.fetchone()[0]

    def release() -> None:
        # If this fails (a broken connection), closing the connection frees the lock.
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_advisory_unlock{kind}(%s)", [lock.key])

    return acquire, release


def _flock(file: IO[str], shared: bool) -> Callable[[], bool]:
    def acquire() -> bool:
        try:
            fcntl.flock(file, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    return acquire
