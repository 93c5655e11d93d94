"""Claims on upload sessions: who may write a session now, for how long, and what a loser hears.

Every request that writes to a session first *claims* it with one conditional
UPDATE that also reads it (unclaimed or expired claim, in the named
repository, at the offset the chunk starts from), and drops the claim with a
second one that stores the new offset (``registry.db.uploads``). A claim is
a lease (``CROW_UPLOAD_LEASE``, seconds), renewed while bytes flow, so a
writer that died frees its upload within seconds and a slow but steady one
keeps it. The store asks ``Claim.confirm`` before any byte lands
(``WriteClaim``), so a request that lost its claim reaches nothing.

A claim that is not won says why, as the client must hear it: no such
session (404), a chunk for another offset, or another writer (416, with
where the upload stands and, for a busy one, when its claim expires).
"""

import logging
import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from registry import errors
from registry.db import uploads as sessions
from registry.errors import RegistryError
from registry.models import Upload
from registry.storage import Fenced, WriteClaim, blob_store

log = logging.getLogger(__name__)
TAKEN_OVER = "the upload was taken over or cancelled"


def lease() -> timedelta:
    return timedelta(seconds=settings.CROW_UPLOAD_LEASE)


@dataclass
class Claim:
    id: uuid.UUID
    # False once the session row was released or deleted: nothing is left to release.
    held: bool = True
    # The offset the session had when it was claimed: a failed write is cut back to it.
    saved_offset: int = 0

    def for_store(self, upload: Upload) -> WriteClaim:
        return WriteClaim(self.id.hex, lambda: self.confirm(upload))

    def renew(self, upload: Upload, now: datetime) -> None:
        """Hold the session a lease longer from ``now``; raises ``Fenced`` if the claim was lost."""
        if not sessions.renew(upload.id, self.id, now + lease()):
            raise Fenced(TAKEN_OVER)

    def confirm(self, upload: Upload) -> None:
        """Raise ``Fenced`` unless the claim still holds the upload (and hold it a lease longer)."""
        self.renew(upload, timezone.now())

    def save(self, upload: Upload) -> None:
        """Store the new state and release the claim, in one UPDATE."""
        if not sessions.save(upload, self.id):
            raise Fenced(TAKEN_OVER)
        self.held = False

    def release(self, upload: Upload) -> None:
        if self.held:
            sessions.release(upload.id, self.id)
            self.held = False


def find(name: str, upload_id: str) -> Upload:
    upload = sessions.find(name, upload_id)
    if upload is None:
        raise RegistryError(errors.BLOB_UPLOAD_UNKNOWN, detail={"upload": upload_id})
    return upload


@contextmanager
def claimed(name: str, upload_id: str, start: int | None) -> Iterator[tuple[Upload, Claim]]:
    """Claim session ``upload_id`` of repository ``name`` (at offset ``start``, if given) and read it,
    in one UPDATE ... RETURNING; release the claim on the way out unless the session is gone."""
    claim = Claim(uuid.uuid4())
    now = timezone.now()
    upload = sessions.claim(name, uuid.UUID(upload_id), start, claim.id, now, now + lease())
    if upload is None:
        raise _refusal(name, upload_id, start)
    claim.saved_offset = upload.offset
    try:
        with fenced():
            yield upload, claim
    except BaseException:
        if claim.held:  # cut back what this request wrote, before another may claim the upload
            quietly(blob_store().rollback, upload.id.hex, claim.saved_offset, claim.for_store(upload))
        raise
    finally:
        claim.release(upload)


@contextmanager
def fenced() -> Iterator[None]:
    """The store's ``Fenced`` as the client sees it."""
    try:
        yield
    except Fenced as exc:
        raise RegistryError(errors.BLOB_UPLOAD_INVALID, TAKEN_OVER, status=416) from exc


def quietly(cleanup: Callable[..., object], *args: object) -> None:
    """Clean up after a failure, which is what the client hears about; a cleanup that fails is logged
    (gc's sweep and ``purge_uploads`` take what it left)."""
    try:
        cleanup(*args)
    except Exception:
        log.warning("could not clean up after a failed upload: %s%r", cleanup.__name__, args, exc_info=True)


def _refusal(name: str, upload_id: str, start: int | None) -> RegistryError:
    """Why the claim was not won: no such session, a chunk for another offset, or another writer."""
    current = find(name, upload_id)  # raises BLOB_UPLOAD_UNKNOWN if there is no such session
    if start is not None and start != current.offset:
        return _out_of_order(current, f"chunk starts at {start} but the upload has {current.offset} bytes")
    retry_after = None
    if current.claimed_until is not None:
        # When its claim expires, unless renewed.
        retry_after = max(1, math.ceil((current.claimed_until - timezone.now()).total_seconds()))
    return _out_of_order(current, "another request is writing to this upload", retry_after)


def _out_of_order(upload: Upload, message: str, retry_after: int | None = None) -> RegistryError:
    position = errors.UploadPosition(upload.repository.name, upload.id.hex, upload.offset, retry_after)
    return RegistryError(errors.BLOB_UPLOAD_INVALID, message, status=416, upload=position)
