"""An upload session's progress commits without waiting for the disk; stored content still waits.

On PostgreSQL the writes to a session (its start, claims, saves) turn
``synchronous_commit`` off for their own transaction (``registry.db.uploads``):
the disk's flush was ~0.2 ms of each. What the kernel is asked to sync shows it:
``pg_stat_wal.wal_sync`` counts each flush of the WAL. A blob recorded after
them waits for the disk again, the setting never leaks to the pooled
connection's next transaction, and inside a caller's transaction the session's
statements leave the caller's commit as it was.
"""

import hashlib

import pytest
from django.db import connection, transaction

from registry import uploads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's commits"),
]

NAME = "team/app"
ROUNDS = 50


@pytest.fixture(autouse=True)
def _flushes_counted() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('fsync'), current_setting('wal_sync_method')")
        fsync, method = cursor.fetchone()
    if fsync != "on" or method not in ("fdatasync", "fsync", "fsync_writethrough"):
        pytest.skip(f"pg_stat_wal counts no syncs with fsync={fsync}, wal_sync_method={method}")


def _wal_syncs() -> int:
    """The WAL flushes so far, this backend's included (its statistics flushed first)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT 1")  # the flush happens when this backend next goes idle
        cursor.execute("SELECT wal_sync FROM pg_stat_wal")
        return cursor.fetchone()[0]


def _setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('synchronous_commit')")
        return cursor.fetchone()[0]


def test_a_sessions_progress_does_not_wait_for_the_disk_and_its_blob_does() -> None:
    data = b"x" * 1024
    before = _wal_syncs()
    for _ in range(ROUNDS):
        upload, _claim = uploads.start(NAME)  # an insert (the first also creates the repository)
        uploads.append(NAME, upload.id.hex, [data], len(data), 0)  # a claim and a save
    relaxed = _wal_syncs() - before
    assert _setting() == "on"  # for the connection's next transaction, as configured

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    before = _wal_syncs()
    uploads.finish(NAME, upload.id.hex, [], 0, None, digest)  # a claim, then the blob recorded
    stored = _wal_syncs() - before

    # 150 commits; a flush each when they wait for the disk. The WAL writer's own flushes (every
    # 200 ms) and the repository's creation are the few left.
    assert relaxed < ROUNDS, f"{relaxed} WAL flushes for {3 * ROUNDS} commits of sessions"
    assert stored >= 1, "the blob's record did not wait for the disk"


def test_inside_a_callers_transaction_the_session_leaves_its_commit_alone() -> None:
    upload, _claim = uploads.start(NAME)
    with transaction.atomic():
        uploads.append(NAME, upload.id.hex, [b"abc"], 3, 0)
        assert _setting() == "on"  # the caller's commit waits for the disk, as it would have
