"""gc, backup and restore never break each other (``registry.locks``).

Each overlap is staged for sure: a command is stopped at the start of one of
its phases (its progress hook waits on an event) in a thread with its own
database connection, and the other command runs meanwhile. What is asserted is
what an operator sees: exit statuses, messages, a backup that restores
byte for byte, blobs deleted or kept.
"""

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from pytest_django.fixtures import Settings

from registry.backup.restore import restore
from registry.backup.snapshot import backup
from registry.gc import collect as gc
from registry.models import Blob, Repository
from registry.progress import Phase, Progress
from registry.storage import blob_store
from tests import backups, oci

pytestmark = pytest.mark.django_db(transaction=True)  # the commands run on several connections

NAME = "team/app"
WAIT = 60  # seconds: for what must happen, however loaded the machine


class Hooks(Progress):
    """Progress that stops its command when a phase named ``pause...`` begins, and tells when a phase
    named ``signal...`` begins."""

    def __init__(self, pause: str = "", signal: str = "") -> None:
        self.pause, self.signal = pause, signal
        self.paused, self.signalled, self.release = threading.Event(), threading.Event(), threading.Event()

    def phase(self, name: str, total: int | None = None) -> Phase:
        if self.signal and name.startswith(self.signal):
            self.signalled.set()
        if self.pause and name.startswith(self.pause) and not self.paused.is_set():
            self.paused.set()
            assert self.release.wait(WAIT), f"never released from {name!r}"
        return Phase()


class Background:
    """``call`` in a thread with its own database connection; ``result()`` joins it."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.outcome: list[Any] = []
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the joining thread
            self.outcome.append(exc)
        finally:
            connection.close()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self) -> Any:
        self.thread.join(WAIT)
        assert self.done(), "the command never ended"
        if isinstance(self.outcome[0], BaseException):
            raise self.outcome[0]
        return self.outcome[0]


def command(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def refused(name: str, *args: str) -> CommandError:
    with pytest.raises(CommandError) as failure:
        command(name, *args)
    return failure.value


def stored(blob: oci.Blob) -> bool:
    row = Blob.objects.filter(digest=blob.digest).first()
    return row is not None and blob_store().exists(row.key)


def backed_up_blobs(dest: Path) -> set[str]:
    return {blob["digest"] for blob in json.loads((dest / "crow-backup.json").read_text())["blobs"]}


def test_a_backup_that_gc_untagged_overlaps_while_tags_go_restores_every_tag(
    client: Client, tmp_path: Path, settings: Settings
) -> None:
    images = {f"v{n}": oci.image(f"tagged-{n}", layer_count=2) for n in range(4)}
    for tag, image in images.items():
        oci.push_image(client, NAME, image, tag)
    garbage = oci.layer("garbage before the backup")
    oci.push_blob(client, NAME, garbage)
    before = backups.seen(client)
    dest = tmp_path / "backup"

    backing_up = Hooks(pause="copying blobs")  # the snapshot is taken, no blob is copied yet
    backed_up = Background(lambda: backup(str(dest), progress=backing_up))
    assert backing_up.paused.wait(WAIT)
    for tag in ("v0", "v1"):
        assert client.delete(f"/v2/{NAME}/manifests/{tag}").status_code == 202
    collecting = Hooks(signal="waiting")
    options = gc.GcOptions(grace_period=timedelta(0), untagged=True, wait=timedelta(seconds=WAIT))
    try:
        collected = Background(lambda: gc.collect(options, collecting))
        deadline = time.monotonic() + WAIT
        while not (collecting.signalled.is_set() or collected.done()) and time.monotonic() < deadline:
            time.sleep(0.05)
        # gc has deleted the untagged manifests and waits for the backup before deleting any blob.
        assert all(stored(blob) for tag in ("v0", "v1") for blob in images[tag].blobs)
    finally:
        backing_up.release.set()

    report = backed_up.result()
    assert report.vanished == 0
    swept = collected.result()
    assert (swept.manifests, swept.blobs, swept.deferred) == (2, 7, "")  # v0, v1 and the garbage, once free
    assert not any(stored(blob) for tag in ("v0", "v1") for blob in images[tag].blobs)
    assert not stored(garbage)

    backups.empty_installation()
    settings.CROW_BLOB_ROOT = tmp_path / "fresh-blobs"  # a fresh store too
    restore(str(dest))
    assert backups.seen(client) == before  # every tag, manifest and blob, byte for byte


def test_gc_deletes_no_blob_while_a_backup_outlasts_its_wait_and_says_so(
    client: Client, tmp_path: Path
) -> None:
    oci.push_image(client, NAME, oci.image("kept"), "v1")
    garbage = oci.layer("garbage")
    oci.push_blob(client, NAME, garbage)
    backing_up = Hooks(pause="copying blobs")
    backed_up = Background(lambda: backup(str(tmp_path / "backup"), progress=backing_up))
    assert backing_up.paused.wait(WAIT)
    try:
        failure = refused("gc", "--grace-period", "0", "--wait", "1s")
        assert failure.returncode == 75
        assert "no blob deleted: backups ran for longer than the 0:00:01 gc waits for them" in str(failure)
        assert stored(garbage)
    finally:
        backing_up.release.set()
    backed_up.result()
    assert garbage.digest in backed_up_blobs(tmp_path / "backup")  # gc deleted none of what it named

    assert command("gc", "--grace-period", "0").startswith("gc deleted 0 tags, 0 manifests, 1 blobs")
    assert not stored(garbage)


def test_a_backup_waits_for_gc_to_finish_deleting_and_leaves_out_what_it_deleted(
    client: Client, tmp_path: Path
) -> None:
    kept = oci.image("kept")
    oci.push_image(client, NAME, kept, "v1")
    garbage = oci.layer("garbage")
    oci.push_blob(client, NAME, garbage)
    collecting = Hooks(pause="blobs")  # gc has chosen what to delete and deletes nothing yet
    collected = Background(lambda: gc.collect(gc.GcOptions(grace_period=timedelta(0)), collecting))
    assert collecting.paused.wait(WAIT)
    try:
        failure = refused("backup", str(tmp_path / "refused"), "--wait", "0s")
        assert failure.returncode == 75
        assert "gc was deleting blobs for longer than the 0:00:00 a backup waits" in str(failure)
        assert not (tmp_path / "refused" / "crow-backup.json").exists()

        waiting = Hooks(signal="waiting")
        backed_up = Background(lambda: backup(str(tmp_path / "backup"), progress=waiting))
        assert waiting.signalled.wait(WAIT)
    finally:
        collecting.release.set()
    assert collected.result().blobs == 1
    report = backed_up.result()
    assert report.vanished == 0  # its snapshot came after the deletion: it never saw the garbage
    assert backed_up_blobs(tmp_path / "backup") == {blob.digest for blob in kept.blobs}


def test_restore_refuses_while_gc_runs_and_gc_while_restore_runs(
    client: Client, tmp_path: Path, blob_root: Path
) -> None:
    backups.populate(client)
    before = backups.seen(client)
    dest = tmp_path / "backup"
    backup(str(dest))
    backups.empty_installation()

    collecting = Hooks(pause="manifests")
    collected = Background(lambda: gc.collect(gc.GcOptions(grace_period=timedelta(0)), collecting))
    assert collecting.paused.wait(WAIT)
    try:
        failure = refused("restore", str(dest))
        assert failure.returncode == 75
        assert "restore refused: a gc is running" in str(failure)
        assert not Repository.objects.exists()
        assert not [path for path in (blob_root / "blobs").rglob("*") if path.is_file()]
    finally:
        collecting.release.set()
    collected.result()

    # The restore stores blobs before the rows naming them commit: a gc with no grace period would
    # take them for unknown objects. It must not run meanwhile.
    restoring = Hooks(pause="restoring blobs")
    restored = Background(lambda: restore(str(dest), progress=restoring))
    assert restoring.paused.wait(WAIT)
    try:
        failure = refused("gc", "--grace-period", "0")
        assert failure.returncode == 75
        assert "another gc is running, or a restore" in str(failure)
    finally:
        restoring.release.set()
    restored.result()
    assert backups.seen(client) == before
