"""Abandoned upload sessions: find them and free what they stored.

An upload is abandoned when no request touched it for ``older_than`` and no
request holds it now. Each one is claimed first (the same claim a PATCH
takes), so a client that comes back at that moment either finishes before
the purge or finds its upload gone (``BLOB_UPLOAD_UNKNOWN``), never half of
it. The store frees the bytes (a temp file, or a multipart upload and its
tail object) before the row goes, so a failure leaves the row to retry.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from registry import uploads
from registry.errors import RegistryError
from registry.gc.report import Report
from registry.models import Upload
from registry.storage import StorageError, blob_store

log = logging.getLogger(__name__)


@dataclass
class PurgeReport(Report):
    DID, WOULD = "purged", "would purge"
    COUNTS = "{uploads} uploads, {size}"

    uploads: int = 0


def abandoned(older_than: timedelta) -> "list[Upload]":
    now = timezone.now()
    return list(
        Upload.objects.select_related("repository")
        .filter(updated__lt=now - older_than)
        .filter(Q(claim__isnull=True) | Q(claimed_until__lt=now))
        .order_by("updated")
    )


def purge_uploads(
    older_than: timedelta, dry_run: bool = False, progress: Callable[[Upload], None] | None = None
) -> PurgeReport:
    report = PurgeReport()
    with report.timed():
        for upload in abandoned(older_than):
            if progress:
                progress(upload)
            _purge(upload, dry_run, report)
    return report


def _purge(upload: Upload, dry_run: bool, report: PurgeReport) -> None:
    try:
        # What the store holds for it, not its saved offset: a write that died left more, or less.
        size = blob_store().stored_size(upload.id.hex, upload.storage_state)
    except StorageError as exc:
        log.warning("could not measure upload %s: %s", upload.id.hex, exc)
        size = 0
    if not dry_run:
        try:
            uploads.cancel_claimed(upload)
        except RegistryError:
            return  # a client took it up again, or another purge got there first
        except StorageError as exc:
            log.warning("could not purge upload %s: %s", upload.id.hex, exc)
            report.failed.append(upload.id.hex)
            return
    report.uploads += 1
    report.bytes += size
