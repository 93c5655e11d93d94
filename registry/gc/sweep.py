"""gc's storage sweep: objects no database row knows, older than the grace period, go.

They are the bytes of blobs whose rows a killed or failed gc run already
deleted, and the leftovers (temp files, tails, multipart uploads) of upload
sessions whose rows are gone. Every object the registry writes is named by
its upload session (``StoredObject.upload_id``): one whose session still has a
row is being pushed, and is left alone; so is anything not named so.
"""

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from registry.gc.report import Report
from registry.models import Blob, Upload
from registry.progress import Progress
from registry.storage import StorageError, blob_store
from registry.storage.base import StoredObject

BATCH = 500
DELETE_WORKERS = 8  # storage deletes at once: on S3 or R2 each one is a round trip
# The filesystem store creates an upload's file a moment before its row: never sweep so young a leftover.
LEFTOVER_MIN_AGE = timedelta(minutes=1)


@dataclass
class SweepReport(Report):
    DID, WOULD = "swept", "would sweep"
    COUNTS = "{objects} unknown objects: {size}"

    objects: int = 0


def delete_objects(keys: list[str]) -> dict[str, StorageError]:
    """Delete the blob objects at ``keys``, a few at a time; returns the failures."""
    store = blob_store()

    def delete(key: str) -> StorageError | None:
        try:
            store.delete(key)
        except StorageError as exc:
            return exc
        return None

    with ThreadPoolExecutor(DELETE_WORKERS) as pool:
        return {key: error for key, error in zip(keys, pool.map(delete, keys), strict=True) if error}


def sweep_storage(
    dry_run: bool, now: datetime, cutoff: datetime, skip: set[str], progress: Progress
) -> SweepReport:
    """Delete what no row knows; ``skip``: keys the caller already failed to delete (reported once)."""
    report = SweepReport()
    known = set(Blob.objects.values_list("key", flat=True).iterator(chunk_size=10_000)) | skip
    leftover_cutoff = min(cutoff, now - LEFTOVER_MIN_AGE)
    with progress.phase("storage") as phase:
        batch: list[StoredObject] = []
        try:
            for item in blob_store().iter_keys():
                phase.advance()
                if item.is_blob and item.key in known:
                    continue
                young = item.modified >= (cutoff if item.is_blob else leftover_cutoff)
                if young or not _is_uuid(item.upload_id):
                    continue
                batch.append(item)
                if len(batch) >= BATCH:
                    _sweep(batch, dry_run, report, progress)
                    batch = []
            _sweep(batch, dry_run, report, progress)
        except NotImplementedError as exc:
            progress.note(f"storage sweep skipped: {exc}")
        except (StorageError, OSError) as exc:
            report.failed.append(f"storage sweep: {exc}")
    return report


def _sweep(items: list[StoredObject], dry_run: bool, report: SweepReport, progress: Progress) -> None:
    """Delete the objects of ``items`` that no row knows, checked now: upload sessions first, then blobs.

    In that order, because an upload's commit deletes its session row and adds
    the blob's row in one transaction: an object whose session is gone when we
    look is either known to a blob row by then or garbage.
    """
    if not items:
        return
    sessions = Upload.objects.filter(id__in={uuid.UUID(item.upload_id) for item in items})
    live = {session.hex for session in sessions.values_list("id", flat=True)}
    items = [item for item in items if item.upload_id not in live]
    blob_keys = [item.key for item in items if item.is_blob]
    known = set(Blob.objects.filter(key__in=blob_keys).values_list("key", flat=True))
    items = [item for item in items if not (item.is_blob and item.key in known)]
    failures: dict[str, Exception] = {}
    if not dry_run:
        failures.update(delete_objects([item.key for item in items if item.is_blob]))
        for upload_id in dict.fromkeys(item.upload_id for item in items if not item.is_blob):
            try:
                blob_store().abort(upload_id, {})  # the session's temp file, tails, multipart upload
            except StorageError as exc:
                failures.update({item.key: exc for item in items if item.upload_id == upload_id})
    for item in items:
        if item.key in failures:
            report.failed.append(f"object {item.key}: {failures[item.key]}")
            continue
        kind = "unknown blob object" if item.is_blob else "upload leftover"
        progress.note(f"{kind} {item.key} {item.size} bytes")
        report.objects += 1
        report.bytes += item.size


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False  # not something this registry wrote: leave it alone
    return True
