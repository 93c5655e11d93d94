"""Blobs of mirrored repositories: linked if stored, else streamed from the upstream while stored.

- A blob stored already (by any repository) is linked into the mirrored
  repository: no upstream request.
- ``size`` (a HEAD): asks the upstream for the size (a HEAD) and stores nothing
  (not for names at the root, ``CROW_MIRROR_ROOT``: there a HEAD that misses
  is a push's question, which the upstream must not answer).
- ``fetch`` (a GET): one request claims the download (``registry.mirror.fetches``)
  and streams the upstream's bytes into an upload session
  (``registry.uploads.finish_new``, in a thread of its own) and to the client
  at once, through a bounded pipe (``PIPE_CHUNKS`` pieces of ``upstream.CHUNK``):
  memory stays flat, the client does not wait for the whole blob, and a
  client slower than the upstream slows the download (a client that stalls for
  the read timeout, or goes away, is dropped and the download goes on, for the
  next one). The client's stream ends only once the blob is verified and
  committed: on a digest mismatch the session and its bytes go, nothing is
  linked, and the client's download breaks off (it never sees a clean end).
- Any other request for the same blob meanwhile waits until the download is
  done (``CROW_MIRROR_FETCH_WAIT`` at most, else 503) and is then served from
  the store like any stored blob (a presigned redirect on S3); ``WAITERS`` of a
  process wait at once at most, the next are answered 503 with ``Retry-After``
  (clients retry a layer download). Waiting rather
  than tailing the file being written: it works the same on every store and
  replica, and costs a waiter a thread, not a second download.
"""

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from registry import errors, uploads
from registry.db import blobs
from registry.db.blobs import BlobRow
from registry.errors import RegistryError
from registry.events import audit
from registry.mirror import fetches, upstream
from registry.mirror.models import MirroredRepository
from registry.mirror.routing import Route
from registry.models import Blob

log = logging.getLogger(__name__)

PIPE_CHUNKS = 4
# Requests of this process that may wait for another's download at once: each holds one of the few
# threads of requests without a body, so more would starve every other request; the next get 503.
WAITERS = 4
_waiters = threading.BoundedSemaphore(WAITERS)


@dataclass(frozen=True)
class Fetching:
    """A blob on its way from the upstream: ``length`` bytes, as they arrive."""

    length: int
    chunks: Iterator[bytes]


class FetchFailed(Exception):
    """The download under a client's stream failed: its response must break off."""


def linked(route: Route, digest: str) -> BlobRow | None:
    """The blob in the mirrored repository, linked there first if any repository has it."""
    found = blobs.linked(route.local, digest)
    if found is not None or not Blob.objects.filter(digest=digest).exists():
        return found
    blob = uploads.mount(route.local, digest, None)
    return None if blob is None else BlobRow(blob.size, blob.key)


def size(route: Route, digest: str, may_fetch: bool) -> int | None:
    """The blob's size, from the store or else from the upstream (nothing is stored); None if unknown."""
    found = linked(route, digest)
    if found is not None or not may_fetch or route.root:
        # At the root (CROW_MIRROR_ROOT) a HEAD that misses is most often a push to a new local
        # repository asking whether to upload: the upstream must not answer for it.
        return None if found is None else found.size
    try:
        length = upstream.Client(route.upstream, route.remote).blob_size(digest)
    except upstream.NotFound:
        return None
    except upstream.UpstreamError as exc:
        raise exc.as_registry_error() from exc
    if length is None:
        raise RegistryError(
            errors.UNKNOWN, f"upstream {route.upstream.prefix} did not say the blob's size", status=502
        )
    return length


def fetch(route: Route, digest: str, may_fetch: bool) -> BlobRow | Fetching | None:
    """The stored blob, or its download from the upstream (None if neither has it)."""
    deadline = time.monotonic() + settings.CROW_MIRROR_FETCH_WAIT
    while True:
        found = linked(route, digest)
        if found is not None or not may_fetch:
            return found
        claim_id = fetches.claim(digest)
        if claim_id is not None:
            return _download(route, digest, claim_id)
        if not _waiters.acquire(blocking=False):  # every waiter holds a thread: a few at once, no more
            raise errors.unavailable(_still_downloading(route, digest))
        try:
            waited = fetches.wait(digest, deadline)
        finally:
            _waiters.release()
        if not waited:
            raise errors.unavailable(_still_downloading(route, digest))


def _still_downloading(route: Route, digest: str) -> str:
    return f"blob {digest} is still being downloaded from upstream {route.upstream.prefix}"


def _download(route: Route, digest: str, claim_id: uuid.UUID) -> BlobRow | Fetching | None:
    try:
        download = upstream.Client(route.upstream, route.remote).blob(digest)
    except upstream.UpstreamError as exc:
        fetches.release(digest, claim_id)
        if isinstance(exc, upstream.NotFound):
            return None
        log.warning("could not fetch blob %s of %s: %s", digest, route.local, exc)
        raise exc.as_registry_error() from exc
    pipe = _Pipe(PIPE_CHUNKS, settings.CROW_MIRROR_READ_TIMEOUT)
    actor = audit.Actor(route.actor, audit.current().address)
    store = threading.Thread(
        target=_store,
        args=(route, digest, claim_id, download, pipe, actor),
        name=f"mirror {digest[:19]}",
        daemon=True,
    )
    store.start()
    if download.length is None:  # nothing to tell the client up front: it waits for the stored blob
        pipe.drop()
        store.join()
        stored = blobs.linked(route.local, digest)
        if stored is None:
            message = f"the download from upstream {route.upstream.prefix} failed"
            raise RegistryError(errors.UNKNOWN, message, status=502)
        return stored
    return Fetching(download.length, pipe.drain())


def _store(
    route: Route,
    digest: str,
    claim_id: uuid.UUID,
    download: upstream.BlobDownload,
    pipe: "_Pipe",
    actor: audit.Actor,
) -> None:
    """In a thread of its own: the upstream's bytes into an upload session and the pipe, then the
    commit; the claim is released before the client's stream ends, either way."""
    error: BaseException | None = None
    try:
        with audit.acting(actor):
            upload, claim = uploads.start(route.local, claimed=True)
            chunks = _teed(download, pipe, digest, claim_id)
            uploads.finish_new(upload, claim, chunks, download.length, digest)
        MirroredRepository.objects.get_or_create(
            repository_id=upload.repository.id, defaults={"upstream_id": route.upstream.id}
        )
        log.info("stored blob %s of %s from upstream %s", digest, route.local, route.upstream.prefix)
    except BaseException as exc:
        log.warning("the download of blob %s of %s failed: %s", digest, route.local, exc)
        error = FetchFailed(f"the download of {digest} from upstream {route.upstream.prefix} failed: {exc}")
    finally:
        download.close()
        try:
            fetches.release(digest, claim_id)
        except Exception as exc:  # the lease runs out instead
            log.warning("could not release the download claim on %s: %s", digest, exc)
        finally:
            connection.close()
            pipe.end(error)


def _teed(
    download: upstream.BlobDownload, pipe: "_Pipe", digest: str, claim_id: uuid.UUID
) -> Iterator[bytes]:
    renewed = time.monotonic()
    for chunk in download.chunks():
        pipe.put(chunk)
        yield chunk
        if time.monotonic() - renewed > fetches.LEASE / 3:
            fetches.renew(digest, claim_id)
            renewed = time.monotonic()


class _Pipe:
    """Pieces handed from the storing thread to the client's response, at most ``capacity`` at once."""

    def __init__(self, capacity: int, timeout: float) -> None:
        self._capacity = capacity
        self._timeout = timeout
        self._items: deque[bytes] = deque()
        self._changed = threading.Condition()
        self._ended = False
        self._error: BaseException | None = None
        self._dropped = False

    def put(self, chunk: bytes) -> None:
        """Hand a piece to the client; if it took none for ``timeout`` seconds, drop it and go on."""
        with self._changed:
            room = self._changed.wait_for(
                lambda: self._dropped or len(self._items) < self._capacity, self._timeout
            )
            if not room:
                log.warning(
                    "a client stalled while a blob was fetched for it: the download goes on without it"
                )
                self._dropped = True
                self._items.clear()
            if not self._dropped:
                self._items.append(chunk)
                self._changed.notify_all()

    def end(self, error: BaseException | None = None) -> None:
        with self._changed:
            self._ended, self._error = True, error
            self._changed.notify_all()

    def drop(self) -> None:
        """No client reads this pipe (any more)."""
        with self._changed:
            self._dropped = True
            self._items.clear()
            self._changed.notify_all()

    def drain(self) -> Iterator[bytes]:
        """The pieces as they come, to the end (a ``FetchFailed`` if the download failed)."""
        try:
            while True:
                with self._changed:
                    arrived = self._changed.wait_for(
                        lambda: self._items or self._ended or self._dropped, self._timeout
                    )
                    if not arrived:
                        raise FetchFailed("the upstream sent nothing for the read timeout")
                    if self._dropped and not self._items:
                        raise FetchFailed("the client took too long: the download went on without it")
                    if self._items:
                        chunk = self._items.popleft()
                        self._changed.notify_all()
                    elif self._error is not None:
                        raise self._error
                    else:
                        return
                yield chunk
        finally:
            self.drop()
