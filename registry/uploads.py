"""Blob upload sessions: offsets, the resumable digest, claims, commit.

Every request that writes to a session first *claims* it with one conditional
UPDATE that also reads it (unclaimed or expired claim, in the named repository,
at the offset the chunk starts from), streams the body to storage while hashing
it, then stores the new offset (and the hash state, where it lives in the row)
and drops the claim with a second UPDATE. The body is read from
the client exactly once; a chunk that does not start at the stored offset is
refused with 416 whatever the client claims; a body that breaks off commits
nothing. A body that stalls (no byte for the server's body timeout) ends its
chunk where it stopped: the bytes that arrived are stored, hashed and saved,
and the client hears 408 with the offset to resume from (``GET`` on the
upload tells it too); nothing is committed as a blob. A monolithic POST keeps
nothing: no client knows its session. While the body arrives, the request
holds no database connection (``registry.bodies``).

A claim is a lease (``CROW_UPLOAD_LEASE``, seconds; ``registry.claims``),
renewed every third of it while bytes flow, so a writer that died frees its
upload within seconds and a slow but steady one keeps it. A request that loses its claim (it stalled past
the lease and another took over, or the upload was committed or cancelled) is
fenced by the store: no byte it still holds reaches the upload or the blob
(``registry.storage.upload_files``; S3: every object it writes is its own).
A write that fails is cut back to the saved offset before its claim is
released, and a monolithic upload that fails leaves no session behind.

How the SHA-256 is computed depends on the store (``registry.hashing``): a
resumable state in the row for S3; for the filesystem, OpenSSL's as the bytes
arrive, with the digest so far in the row, or the upload read back once at the
end when its chunks were spread over processes. A sha512 upload is hashed as
it arrives when one request brings all of it, else read back: before the
commit on the filesystem, after it on S3 (the committed object is deleted if
it does not match).

Starting a session costs one statement (three the first time a repository is
pushed to), a chunk two, finishing the claim and one transaction that records
the blob, links it and closes the session (on PostgreSQL one statement, one
round trip); ``registry.db`` has them as fixed SQL.

This module takes the body as an iterator of bytes and its length, never a
request, and says what went wrong with ``RegistryError``: where the upload
stands (``errors.UploadPosition``) is detail that ``registry.responses`` turns
into the ``Location``, ``Range``, ``Docker-Upload-UUID`` and ``Retry-After``
headers.
"""

import contextlib
import uuid
from collections.abc import Iterable, Iterator

from django.db import transaction
from django.utils import timezone

from registry import claims, errors, hashing
from registry.claims import Claim, fenced, quietly
from registry.db import blobs, repositories
from registry.db import uploads as sessions
from registry.errors import RegistryError, Stalled
from registry.events import audit
from registry.events.models import CREATE_REPOSITORY
from registry.models import Blob, Repository, Upload
from registry.storage import Fenced, StorageError, blob_store


def start(name: str, claimed: bool = False) -> tuple[Upload, Claim | None]:
    """A new session in repository ``name`` (created if missing); ``claimed`` for the request that
    will write it at once (a monolithic POST)."""
    upload = Upload(hash_state=_hashing().initial_state())
    upload.storage_state = blob_store().start_upload(upload.id.hex)
    claim = None
    if claimed:
        claim = Claim(uuid.uuid4())
        upload.claim, upload.claimed_until = claim.id, timezone.now() + claims.lease()
    try:
        for _ in range(3):  # the repository can vanish in between only if an operator deleted it
            repository_id = sessions.insert(upload, name) or sessions.insert_creating(
                upload, name, audit.event(CREATE_REPOSITORY, repository=name)
            )
            if repository_id is not None:
                upload.repository = Repository(id=repository_id, name=name)
                return upload, claim
    except BaseException:
        quietly(blob_store().abort, upload.id.hex, upload.storage_state)
        raise
    blob_store().abort(upload.id.hex, upload.storage_state)
    raise RuntimeError(f"repository {name} was deleted three times while an upload started in it")


def find(name: str, upload_id: str) -> Upload:
    """Session ``upload_id`` as it stands (a status GET, a cancel); ``BLOB_UPLOAD_UNKNOWN`` if none."""
    return claims.find(name, upload_id)


def append(
    name: str, upload_id: str, chunks: Iterable[bytes], length: int | None, start: int | None
) -> Upload:
    """Add a chunk: ``chunks``, ``length`` bytes (0: none at all; None: streamed, length unknown),
    starting at ``start`` (from ``Content-Range``, or None for a streamed PATCH)."""
    with claims.claimed(name, upload_id, start) as (upload, claim):
        hasher, stalled = _write(upload, chunks, length, claim)
        _save(upload, claim, hasher)
        if stalled is not None:
            raise _resume_from(upload) from stalled
    return upload


def finish(
    name: str, upload_id: str, chunks: Iterable[bytes], length: int | None, start: int | None, digest: str
) -> Blob:
    """Take the last chunk (as ``append``), verify ``digest`` and make the bytes a blob of the repository."""
    _require_supported(digest)
    with claims.claimed(name, upload_id, start) as (upload, claim):
        return _finish_claimed(upload, claim, chunks, length, digest, resumable=True)


def finish_new(
    upload: Upload, claim: Claim, chunks: Iterable[bytes], length: int | None, digest: str
) -> Blob:
    """``finish`` for a session that ``start(claimed=True)`` just opened (a monolithic POST); if it
    fails in any way, the session and its bytes go: no client will resume an upload it never saw."""
    try:
        _require_supported(digest)
        with fenced():
            return _finish_claimed(upload, claim, chunks, length, digest, resumable=False)
    except BaseException:
        if claim.held:
            claim.held = False
            quietly(cancel, upload)
        raise


def _require_supported(digest: str) -> None:
    if not hashing.supported(digest):
        raise RegistryError(
            errors.DIGEST_INVALID,
            f"uploads are verified with {' or '.join(sorted(hashing.ALGORITHMS))} only",
            detail={"digest": digest},
        )


def _finish_claimed(
    upload: Upload, claim: Claim, chunks: Iterable[bytes], length: int | None, digest: str, resumable: bool
) -> Blob:
    hasher, stalled = _write(upload, chunks, length, claim, hashing.algorithm_of(digest), resumable)
    if stalled is not None:  # the bytes that arrived are kept, and nothing is committed
        _save(upload, claim, hasher)
        raise _resume_from(upload) from stalled
    computed = _digest(upload, claim, hasher, digest)
    if computed is not None and computed != digest:
        _refuse_digest(upload, claim, digest, computed)
    blob = _store_blob(upload, digest, claim, verify_after_commit=computed is None)
    claim.held = False  # the session is gone
    return blob


def _refuse_digest(upload: Upload, claim: Claim, digest: str, computed: str) -> None:
    claim.confirm(upload)  # a request that lost its claim cancels nothing
    cancel(upload)
    claim.held = False
    raise RegistryError(
        errors.DIGEST_INVALID,
        detail={"expected": digest, "computed": computed, "size": upload.offset},
    )


def _store_blob(upload: Upload, digest: str, claim: Claim, verify_after_commit: bool = False) -> Blob:
    """Commit the bytes and record them as a blob of the repository, in one transaction.

    If the blob was already stored (a concurrent upload of the same bytes, or
    a client that pushed without asking first), the existing row wins, locked
    until the link is in place so that garbage collection cannot delete it in
    between, and this upload's copy goes.
    """
    store = blob_store()
    key = store.commit(upload.id.hex, upload.storage_state, digest, upload.offset, claim.for_store(upload))
    if verify_after_commit:
        _verify_committed(upload, claim, key, digest)
    blob = _record(digest, upload, key)
    if blob.key != key:
        store.delete(key)
    return blob


def _verify_committed(upload: Upload, claim: Claim, key: str, digest: str) -> None:
    """A digest the store could not compute before the commit (``registry.hashing``): the committed
    bytes, read back; deleted with the session if they do not match, before any row names them."""
    store = blob_store()
    try:
        chunks = _hashed(store.read(key), None, upload, claim.id)  # a long read renews the claim too
        computed = hashing.of_chunks(hashing.algorithm_of(digest), chunks)
    except (StorageError, RegistryError, Fenced):
        # The session cannot be committed twice (S3 completed its multipart upload): it goes too.
        with contextlib.suppress(StorageError):
            store.delete(key)
            cancel(upload)
        sessions.delete(upload.id)
        claim.held = False
        raise
    if computed != digest:
        store.delete(key)
        _refuse_digest(upload, claim, digest, computed)


def _record(digest: str, upload: Upload, key: str) -> Blob:
    """The blob's row (inserted if this is its first upload, else the existing one), linked into the
    upload's repository, and the session gone, in one transaction."""
    for _ in range(3):  # the existing row can vanish in between only if gc deleted it: then insert
        blob = blobs.store_upload(digest, upload.offset, key, upload.repository.id, upload.id)
        if blob is not None:
            return blob
    raise RuntimeError(f"blob {digest} was deleted three times while it was being recorded")


def cancel(upload: Upload) -> None:
    """Free the upload's storage at once (fencing any request still writing to it) and forget it."""
    blob_store().abort(upload.id.hex, upload.storage_state)
    sessions.delete(upload.id)


def cancel_claimed(upload: Upload) -> None:
    """Cancel an upload no request is writing to (raises ``RegistryError`` if one is, or it moved on)."""
    with claims.claimed(upload.repository.name, upload.id.hex, upload.offset) as (session, claim):
        cancel(session)
        claim.held = False


def mount(name: str, digest: str, source: str | None) -> Blob | None:
    """Link an existing blob into repository ``name``, created if missing (from ``source``, or from
    anywhere when None).

    Under the blob's row lock, as in ``_store_blob``: a blob that garbage
    collection is deleting is waited for and then not found (the client
    uploads it), instead of a link that fails at commit.
    """
    repository_id = repositories.id_of(name) or audit.create_repository(name)
    if repository_id is None:  # created and deleted again by an operator, in between
        raise Repository.DoesNotExist(f"repository {name} was deleted meanwhile")
    with transaction.atomic():
        blob = blobs.locked(digest, source)
        if blob is not None:
            blobs.link(repository_id, [blob.id])
    return blob


def _hashing() -> hashing.Strategy:
    return hashing.for_store(blob_store())


def _write(
    upload: Upload,
    chunks: Iterable[bytes],
    length: int | None,
    claim: Claim,
    algorithm: str = hashing.FAST,
    resumable: bool = True,
) -> tuple[hashing.Hasher | None, Stalled | None]:
    """Stream the chunks into storage and their hasher (``registry.hashing``; ``algorithm``: the one a
    finishing request verifies), which it returns; on success the instance holds the new state.

    A body that breaks off raises from ``chunks`` (``SIZE_INVALID``) and commits nothing. One that
    stalls (``Stalled``) ends the chunk where it stopped, if the session is ``resumable`` (a client
    knows it and can resume): the bytes that arrived are stored and hashed, and the stall is
    returned, for the caller to save the new offset and then refuse the request.
    """
    store = blob_store()
    hasher = _hashing().hasher_for(upload, algorithm)
    if length == 0:
        return hasher, None
    received = 0
    stalled = None

    def counted() -> Iterator[bytes]:
        nonlocal received, stalled
        try:
            for chunk in chunks:
                received += len(chunk)
                yield chunk
        except Stalled as exc:
            if not resumable:
                raise
            stalled = exc

    state = store.write(
        upload.id.hex,
        upload.storage_state,
        upload.offset,
        _hashed(counted(), hasher, upload, claim),
        claim.for_store(upload),
    )
    upload.offset += received
    upload.storage_state = state
    _hashing().written(upload, hasher)
    return hasher, stalled


def _save(upload: Upload, claim: Claim, hasher: hashing.Hasher | None) -> None:
    """Store the session's new offset and states, and release the claim."""
    claim.save(upload)
    _hashing().saved(upload, hasher)


def _resume_from(upload: Upload) -> RegistryError:
    """A chunk whose body stalled, saved where it stopped: 408, with where the client resumes."""
    return RegistryError(
        errors.BLOB_UPLOAD_INVALID,
        f"the body stalled: the upload keeps the {upload.offset} bytes received, resume from there",
        status=errors.REQUEST_TIMEOUT,
        upload=errors.UploadPosition(upload.repository.name, upload.id.hex, upload.offset),
    )


def _digest(upload: Upload, claim: Claim, hasher: hashing.Hasher | None, digest: str) -> str | None:
    """The upload's digest in ``digest``'s algorithm; None if the store can tell only after the commit."""
    store = blob_store()

    def reread() -> Iterator[bytes]:
        chunks = store.read_upload(
            upload.id.hex, upload.storage_state, upload.offset, claim.for_store(upload)
        )
        return _hashed(chunks, None, upload, claim)  # a long read renews the claim too

    return _hashing().digest(upload, hasher, reread, hashing.algorithm_of(digest))


def _hashed(
    chunks: Iterator[bytes], hasher: hashing.Hasher | None, upload: Upload, claim: Claim
) -> Iterator[bytes]:
    """``chunks``, fed to ``hasher`` (if any) on the way, renewing the claim while they last."""
    renew_every = claims.lease() / 3
    renewed = timezone.now()
    for chunk in chunks:
        if hasher is not None:
            hasher.update(chunk)
        yield chunk
        now = timezone.now()
        if now - renewed > renew_every:
            claim.renew(upload, now)
            renewed = now
