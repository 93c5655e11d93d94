"""``backup(DEST)``: a consistent snapshot of the registry, taken while it serves.

1. In one read-only transaction (REPEATABLE READ on PostgreSQL; a deferred
   transaction on SQLite, whose WAL readers see one snapshot and block no
   writer) read every row the backup keeps and write every manifest's bytes
   into the layout. Every later write to the registry is invisible to it.
2. Copy the blobs the snapshot names, outside the transaction: a blob is
   content-addressed and never changes, so a copy made later is the same
   bytes. A blob already in DEST with the right size is not copied again
   (backups are incremental); every copied blob is hashed as it streams and
   put in place only if it matches its digest.
3. Write ``oci-layout``, ``index.json`` and, last, ``crow-backup.json``
   (``registry.backup.format`` documents them), each to a temporary name
   renamed into place. Until the metadata file is there, DEST holds no new
   backup; if it held an older one, that one stays complete (blobs are only
   ever added, unless ``prune`` is asked for after a successful backup).

Steps 1 and 2 hold ``locks.BLOBS`` shared: garbage collection deletes no blob
row or byte while a backup copies what its snapshot names (it waits for the
backup to end), and a backup that starts while gc deletes waits until the
deletions have committed, then takes its snapshot without the deleted blobs.
A blob deleted between the snapshot and its copy anyway (by hand, or by a gc
that ignores the lock) is left out if no manifest of the snapshot references
it (it was garbage); if one does, the backup fails and asks to be run again.
"""

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from registry import locks, models
from registry.backup import accounts
from registry.backup.format import (
    FORMAT,
    INDEX,
    METADATA,
    OCI_LAYOUT,
    OCI_LAYOUT_CONTENT,
    encode,
    index_document,
    version_for,
)
from registry.backup.layout import CorruptBlob, Layout, LayoutError
from registry.backup.locations import open_layout
from registry.progress import Phase, Progress
from registry.storage import StorageError, blob_store

MANIFEST_BATCH = 500


class BackupError(Exception):
    """The backup failed; DEST holds no new complete backup."""

    exit_code = 1


class BackupBusy(BackupError):
    """gc deleted blobs for longer than the backup would wait; nothing was backed up."""

    exit_code = locks.EX_TEMPFAIL


@dataclass
class BackupReport:
    repositories: int = 0
    manifests: int = 0
    tags: int = 0
    blobs: int = 0
    bytes: int = 0
    copied: int = 0  # blobs and manifests written this time
    bytes_copied: int = 0
    skipped: int = 0  # blobs and manifests DEST had already
    vanished: int = 0  # unreferenced blobs deleted (by gc) before they could be copied
    pruned: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.bytes_copied / 2**20 / self.seconds if self.seconds else 0.0
        extra = f", {self.vanished} unreferenced blobs gone meanwhile" if self.vanished else ""
        extra += f", {self.pruned} old blobs pruned" if self.pruned else ""
        return (
            f"backed up {self.repositories} repositories, {self.manifests} manifests, {self.tags} tags,"
            f" {self.blobs} blobs ({self.bytes} bytes): copied {self.copied} files"
            f" ({self.bytes_copied} bytes),"
            f" {self.skipped} already there{extra}, in {self.seconds:.1f}s ({rate:.1f} MiB/s)"
        )


@dataclass
class _Blob:
    digest: str
    size: int
    key: str
    created: Any
    referenced: bool = False


def backup(
    destination: str | Layout,
    *,
    prune: bool = False,
    progress: Progress | None = None,
    wait: timedelta = locks.DEFAULT_WAIT,
) -> BackupReport:
    """Back up to DEST; ``wait``: how long to wait at most for a gc that is deleting blobs."""
    began = timezone.now()
    try:
        report = _backup(destination, prune=prune, progress=progress, wait=wait)
    except BaseException:
        with suppress(DatabaseError):  # the database may be why it failed
            models.JobRun.objects.finished("backup", began, succeeded=False)
        raise
    models.JobRun.objects.finished("backup", began, succeeded=True)
    return report


def _backup(
    destination: str | Layout, *, prune: bool, progress: Progress | None, wait: timedelta
) -> BackupReport:
    started = time.monotonic()
    progress = progress or Progress()
    report = BackupReport()
    try:
        layout = open_layout(destination)
    except LayoutError as exc:
        raise BackupError(str(exc)) from exc
    try:
        layout.prepare()
        with _blobs_kept(wait, progress):
            with snapshot():
                metadata, blobs = _read(layout, report, progress)
            _copy_blobs(layout, metadata, blobs, report, progress)
        layout.write_file(OCI_LAYOUT, OCI_LAYOUT_CONTENT)
        layout.sync()
        layout.write_file(INDEX, index_document(metadata["repositories"]))
        layout.write_file(METADATA, encode(metadata))
        if prune:
            report.pruned = _prune(layout, metadata)
    except LayoutError as exc:
        raise BackupError(str(exc)) from exc
    except CorruptBlob as exc:
        raise BackupError(
            f"{exc} in the registry's store (see manage.py verify); no backup was written"
        ) from exc
    finally:
        layout.close()
    report.seconds = time.monotonic() - started
    return report


def _blobs_kept(wait: timedelta, progress: Progress) -> ExitStack:
    """``locks.BLOBS``, shared: gc deletes no blob until the block ends; ``BackupBusy`` after ``wait``."""
    shown = ExitStack()  # a phase on stderr while the backup waits

    def waiting() -> None:
        shown.enter_context(progress.phase(f"waiting up to {wait} for gc to finish deleting blobs"))

    try:
        with shown:
            return locks.take(locks.BLOBS, shared=True, wait=wait.total_seconds(), waiting=waiting)
    except locks.Busy:
        raise BackupBusy(
            f"gc was deleting blobs for longer than the {wait} a backup waits; no backup was written"
        ) from None


@contextmanager
def snapshot() -> Iterator[None]:
    """A read-only transaction whose reads all see the database as it was when it began."""
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        yield  # the caller's transaction (a test's) is the snapshot
        return
    if connection.vendor == "sqlite":
        # atomic() would BEGIN IMMEDIATE (see settings) and hold the write lock throughout.
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _read(
    layout: Layout, report: BackupReport, progress: Progress
) -> tuple[dict[str, Any], dict[int, _Blob]]:
    created = timezone.now()
    repositories = {
        pk: {"name": name, "created": when, "blobs": [], "manifests": [], "tags": []}
        for pk, name, when in models.Repository.objects.values_list("id", "name", "created")
    }
    blobs = {
        pk: _Blob(digest, size, key, when)
        for pk, digest, size, key, when in models.Blob.objects.values_list(
            "id", "digest", "size", "key", "created"
        )
    }
    used: set[int] = set()
    for repository_id, blob_id in models.RepositoryBlob.objects.values_list("repository_id", "blob_id"):
        repositories[repository_id]["blobs"].append(blobs[blob_id].digest)
        used.add(blob_id)
    manifest_blobs: dict[int, list[str]] = defaultdict(list)
    for manifest_id, blob_id in models.ManifestBlob.objects.values_list("manifest_id", "blob_id"):
        manifest_blobs[manifest_id].append(blobs[blob_id].digest)
        blobs[blob_id].referenced = True
        used.add(blob_id)
    digests = dict(models.Manifest.objects.values_list("id", "digest"))
    children: dict[int, list[str]] = defaultdict(list)
    for parent_id, child_id in models.ManifestChild.objects.values_list("parent_id", "child_id"):
        children[parent_id].append(digests[child_id])
    absent: dict[int, list[dict[str, str]]] = defaultdict(list)
    for manifest_id, digest, kind in models.AbsentReference.objects.values_list(
        "manifest_id", "digest", "kind"
    ):
        absent[manifest_id].append({"digest": digest, "kind": kind})
    for repository_id, name, manifest_id, updated in models.Tag.objects.values_list(
        "repository_id", "name", "manifest_id", "updated"
    ):
        repositories[repository_id]["tags"].append(
            {"name": name, "digest": digests[manifest_id], "updated": updated}
        )

    fields = (
        "id",
        "repository_id",
        "digest",
        "media_type",
        "artifact_type",
        "size",
        "subject",
        "annotations",
    )
    rows = models.Manifest.objects.values_list(*fields, "created", "content").iterator(MANIFEST_BATCH)
    with progress.phase("writing manifests", len(digests)) as phase:
        for row in rows:
            references = (manifest_blobs, children, absent)
            _add_manifest(layout, row, fields, repositories, references, report, progress)
            phase.advance()

    for repository in repositories.values():
        repository["blobs"].sort()
        repository["manifests"].sort(key=lambda manifest: manifest["digest"])
        repository["tags"].sort(key=lambda tag: tag["name"])
        report.manifests += len(repository["manifests"])
        report.tags += len(repository["tags"])
    report.repositories = len(repositories)
    metadata = {
        "format": FORMAT,
        "version": version_for(repositories.values()),
        "created": created,
        "blobs": [],  # filled in once copied: a blob gc deleted meanwhile may be left out
        "repositories": sorted(repositories.values(), key=lambda repository: repository["name"]),
        **accounts.dump(),
    }
    return metadata, {pk: blob for pk, blob in blobs.items() if pk in used}


def _add_manifest(
    layout: Layout,
    row: tuple,
    fields: tuple[str, ...],
    repositories: dict[int, dict[str, Any]],
    references: tuple[dict[int, list[str]], dict[int, list[str]], dict[int, list[dict[str, str]]]],
    report: BackupReport,
    progress: Progress,
) -> None:
    """Describe one manifest in the metadata and write its bytes, unless DEST has them."""
    entry = dict(zip(fields, row[: len(fields)], strict=True))
    manifest_id, repository_id = entry.pop("id"), entry.pop("repository_id")
    entry["created"] = row[-2]
    manifest_blobs, children, absent = references
    entry["blobs"] = sorted(manifest_blobs[manifest_id])
    entry["children"] = sorted(children[manifest_id])
    if absent[manifest_id]:
        entry["absent"] = sorted(absent[manifest_id], key=lambda reference: reference["digest"])
    repositories[repository_id]["manifests"].append(entry)
    digest, content = entry["digest"], bytes(row[-1])
    if layout.blob_size(digest) == len(content):
        report.skipped += 1
        return
    layout.write_blob(digest, len(content), [content])
    report.copied += 1
    report.bytes_copied += len(content)
    progress.note(f"manifest {digest} ({len(content)} bytes)")


def _copy_blobs(
    layout: Layout,
    metadata: dict[str, Any],
    blobs: dict[int, _Blob],
    report: BackupReport,
    progress: Progress,
) -> None:
    ordered = sorted(blobs.values(), key=lambda blob: blob.digest)
    todo = [blob for blob in ordered if layout.blob_size(blob.digest) != blob.size]
    report.skipped += len(ordered) - len(todo)
    gone: set[str] = set()
    store = blob_store()
    with progress.phase("copying blobs (bytes)", sum(blob.size for blob in todo)) as phase:
        for blob in todo:
            try:
                layout.write_blob(blob.digest, blob.size, _counted(_read_source(store, blob), phase))
            except StorageError as exc:
                if blob.referenced or models.Blob.objects.filter(digest=blob.digest, key=blob.key).exists():
                    raise BackupError(
                        f"could not read blob {blob.digest} from the registry's store: {exc}"
                    ) from exc
                gone.add(blob.digest)  # garbage collection took it: nothing in the snapshot needs it
                progress.note(f"blob {blob.digest} was deleted meanwhile; left out")
                continue
            report.copied += 1
            report.bytes_copied += blob.size
            progress.note(f"blob {blob.digest} ({blob.size} bytes)")
    kept = [blob for blob in ordered if blob.digest not in gone]
    metadata["blobs"] = [{"digest": b.digest, "size": b.size, "created": b.created} for b in kept]
    for repository in metadata["repositories"]:
        repository["blobs"] = [digest for digest in repository["blobs"] if digest not in gone]
    report.vanished = len(gone)
    report.blobs = len(kept)
    report.bytes = sum(blob.size for blob in kept)


def _read_source(store: Any, blob: _Blob) -> Iterator[bytes]:
    """The blob's bytes from the registry's store; its failures are ``StorageError``, never ``OSError``.

    (The layout turns an ``OSError`` into a failure of the destination.)
    """
    try:
        yield from store.read(blob.key)
    except OSError as exc:
        raise StorageError(f"cannot read {blob.key}: {exc.strerror or exc}") from exc


def _counted(chunks: Iterator[bytes], phase: Phase) -> Iterator[bytes]:
    for chunk in chunks:
        phase.advance(len(chunk))
        yield chunk


def _prune(layout: Layout, metadata: dict[str, Any]) -> int:
    """Delete the blobs of older backups that this one does not name."""
    keep = {blob["digest"] for blob in metadata["blobs"]}
    keep.update(m["digest"] for repository in metadata["repositories"] for m in repository["manifests"])
    pruned = 0
    for digest in list(layout.blob_digests()):
        if digest not in keep:
            layout.delete_blob(digest)
            pruned += 1
    return pruned
