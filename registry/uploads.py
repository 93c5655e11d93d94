"""Blob upload sessions: offsets, the resumable digest, claims, commit.

Every request that writes to a session first *claims* it with one conditional
UPDATE (unclaimed or expired claim, and the offset it read), streams the body
to storage while hashing it with a SHA-256 whose state is saved in the row,
then stores the new offset and hash state and drops the claim with a second
UPDATE. The bytes are read exactly once; a chunk that does not start at the
stored offset is refused with 416 whatever the client claims; a body that
breaks off commits nothing.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import rehashes
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry import errors, responses
from registry.bodies import Body, IncompleteBody
from registry.errors import RegistryError
from registry.models import Blob, Repository, RepositoryBlob, Upload
from registry.storage import blob_store


def start(repository: Repository) -> Upload:
    upload = Upload(repository=repository, hash_state=rehashes.PySha256().serialize())
    upload.storage_state = blob_store().start_upload(upload.id.hex)
    upload.save(force_insert=True)
    return upload


def find(name: str, upload_id: str) -> Upload:
    upload = Upload.objects.select_related("repository").filter(id=upload_id, repository__name=name).first()
    if upload is None:
        raise RegistryError(errors.BLOB_UPLOAD_UNKNOWN, detail={"upload": upload_id})
    return upload


def append(upload: Upload, body: Body, start: int | None) -> Upload:
    """Add a chunk (``start`` from ``Content-Range``, or None for a streamed PATCH)."""
    with _claimed(upload, start) as claim:
        _write(upload, body, claim.id)
        _save(upload, claim)
    return upload


def finish(upload: Upload, body: Body, start: int | None, digest: str) -> Blob:
    """Take the last chunk, verify ``digest`` and make the bytes a blob of the repository."""
    if not digest.startswith("sha256:"):
        raise RegistryError(
            errors.DIGEST_INVALID, "uploads are verified with sha256 only", detail={"digest": digest}
        )
    with _claimed(upload, start) as claim:
        _write(upload, body, claim.id)
        computed = "sha256:" + rehashes.PySha256.deserialize(upload.hash_state).finalize()
        if computed != digest:
            cancel(upload)
            claim.held = False
            raise RegistryError(
                errors.DIGEST_INVALID,
                detail={"expected": digest, "computed": computed, "size": upload.offset},
            )
        blob = _store_blob(upload, digest)
        claim.held = False  # the session is gone
    return blob


def _store_blob(upload: Upload, digest: str) -> Blob:
    """Commit the bytes, unless the blob is already stored: then it is linked and this copy goes.

    The existing blob's row is locked while it is linked, so that garbage
    collection cannot delete it in between; this upload's own bytes are only
    dropped once the link is in place.
    """
    store = blob_store()
    with transaction.atomic():
        # NO KEY UPDATE: it excludes gc's FOR UPDATE, not the KEY SHARE that a concurrent manifest
        # PUT's foreign key takes at commit (FOR UPDATE deadlocked with that PUT's link insert).
        blob = Blob.objects.select_for_update(no_key=True).filter(digest=digest).first()
        if blob is not None:
            _link_and_close(upload, blob)
    if blob is not None:
        store.abort(upload.id.hex, upload.storage_state)
        return blob
    key = store.commit(upload.id.hex, upload.storage_state, digest, upload.offset)
    with transaction.atomic():
        blob = Blob.objects.record(digest, upload.offset, key)
        _link_and_close(upload, blob)
    if blob.key != key:  # a concurrent upload of the same bytes was recorded first
        store.delete(key)
    return blob


def _link_and_close(upload: Upload, blob: Blob) -> None:
    RepositoryBlob.objects.link(upload.repository, [blob])
    Upload.objects.filter(pk=upload.pk).delete()


def cancel(upload: Upload) -> None:
    blob_store().abort(upload.id.hex, upload.storage_state)
    Upload.objects.filter(pk=upload.pk).delete()


def cancel_claimed(upload: Upload) -> None:
    """Cancel an upload no request is writing to (raises ``RegistryError`` if one is, or it moved on)."""
    with _claimed(upload, None) as claim:
        cancel(upload)
        claim.held = False


def mount(repository: Repository, digest: str, source: str | None) -> Blob | None:
    """Link an existing blob into ``repository`` (from ``source``, or from anywhere when None).

    Under the blob's row lock, as in ``_store_blob``: a blob that garbage
    collection is deleting is waited for and then not found (the client
    uploads it), instead of a link that fails at commit.
    """
    with transaction.atomic():
        blobs = Blob.objects.select_for_update(no_key=True, of=("self",)).filter(digest=digest)
        if source is not None:
            blobs = blobs.filter(repositories__name=source)
        blob = blobs.first()
        if blob is not None:
            RepositoryBlob.objects.link(repository, [blob])
    return blob


def _lease() -> timedelta:
    return timedelta(seconds=settings.CROW_UPLOAD_LEASE)


@dataclass
class _Claim:
    id: uuid.UUID
    # False once the session row was released or deleted: nothing is left to release.
    held: bool = True


@contextmanager
def _claimed(upload: Upload, start: int | None) -> Iterator[_Claim]:
    if start is not None and start != upload.offset:
        raise _out_of_order(upload, f"chunk starts at {start} but the upload has {upload.offset} bytes")
    claim = uuid.uuid4()
    now = timezone.now()
    won = (
        Upload.objects.filter(pk=upload.pk, offset=upload.offset)
        .filter(Q(claim__isnull=True) | Q(claimed_until__lt=now))
        .update(claim=claim, claimed_until=now + _lease())
    )
    if not won:
        current = Upload.objects.filter(pk=upload.pk).first()
        if current is None:
            raise RegistryError(errors.BLOB_UPLOAD_UNKNOWN, detail={"upload": upload.id.hex})
        if current.offset != upload.offset:
            raise _out_of_order(current, f"the upload moved on to {current.offset} bytes")
        raise _out_of_order(current, "another request is writing to this upload")
    held = _Claim(claim)
    try:
        yield held
    finally:
        if held.held:
            Upload.objects.filter(pk=upload.pk, claim=claim).update(claim=None, claimed_until=None)


def _out_of_order(upload: Upload, message: str) -> RegistryError:
    name = upload.repository.name
    return RegistryError(
        errors.BLOB_UPLOAD_INVALID,
        message,
        status=416,
        headers={
            "Location": responses.upload_location(name, upload.id.hex),
            "Range": responses.upload_range(upload.offset),
            "Docker-Upload-UUID": upload.id.hex,
        },
    )


def _write(upload: Upload, body: Body, claim: uuid.UUID) -> None:
    """Stream the body into storage and the hash; on success the instance holds the new state."""
    if body.empty:
        return
    hasher = rehashes.PySha256.deserialize(upload.hash_state)
    try:
        state = blob_store().write(
            upload.id.hex, upload.storage_state, upload.offset, _hashed(body.chunks(), hasher, upload, claim)
        )
    except IncompleteBody as exc:
        raise RegistryError(errors.SIZE_INVALID, str(exc)) from exc
    upload.offset += body.received
    upload.hash_state = hasher.serialize()
    upload.storage_state = state


def _hashed(
    chunks: Iterator[bytes], hasher: rehashes.PySha256, upload: Upload, claim: uuid.UUID
) -> Iterator[bytes]:
    renew_every = _lease() / 3
    renewed = timezone.now()
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk
        now = timezone.now()
        if now - renewed > renew_every:
            _renew(upload, claim, now)
            renewed = now


def _renew(upload: Upload, claim: uuid.UUID, now) -> None:
    if not Upload.objects.filter(pk=upload.pk, claim=claim).update(claimed_until=now + _lease()):
        raise RegistryError(errors.BLOB_UPLOAD_INVALID, "the upload was taken over or cancelled", status=416)


def _save(upload: Upload, claim: _Claim) -> None:
    """Store the new state and release the claim, in one UPDATE."""
    saved = Upload.objects.filter(pk=upload.pk, claim=claim.id).update(
        offset=upload.offset,
        hash_state=upload.hash_state,
        storage_state=upload.storage_state,
        updated=timezone.now(),
        claim=None,
        claimed_until=None,
    )
    if not saved:
        raise RegistryError(errors.BLOB_UPLOAD_INVALID, "the upload was taken over or cancelled", status=416)
    claim.held = False
