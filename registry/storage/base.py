"""The blob-store interface that every backend implements.

The store knows bytes, digests and keys, nothing of repositories or HTTP. An
upload is addressed by its session id and carries a small JSON-able ``state``
that the caller keeps in the database between requests (a multipart upload
id, parts written, ...), so any server process can continue it.

``commit`` answers with the blob's *key*: where the store keeps it. The
caller records the key with the blob, and reads, downloads and deletes by key.
A backend may keep a blob under its digest (the filesystem renames the upload
there) or wherever the upload already put it (S3 completes the multipart
upload in place, so a commit copies nothing).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import wraps
from typing import BinaryIO, NamedTuple

from registry import metrics


class StorageError(Exception):
    """The store failed (unreachable, refused, broken): the request may be retried."""


class StorageFull(StorageError):
    """The store has no space left (ENOSPC, EDQUOT): retrying will not help until an operator frees some.

    ``where`` names the store (its root) for the operator's log line; clients are told only that it is full.
    """

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


class Fenced(Exception):
    """The request lost its claim on the upload (taken over, committed or cancelled): it may write no more."""


def _unfenced() -> None:
    return None


@dataclass(frozen=True)
class WriteClaim:
    """The claim a request holds on an upload, as the store sees it.

    ``token`` (unique per claim) names what the request writes, so that a
    request that lost its claim can never reach what a newer one wrote.
    ``confirm`` asks the database whether the claim still holds (raising
    ``Fenced`` otherwise); the store calls it only where the bytes it sees
    cannot tell (``registry.storage.filesystem``).
    """

    token: str
    confirm: Callable[[], None] = _unfenced


#: For a caller that is the upload's only writer by construction (restore), not by a claim in the database.
SOLE_WRITER = WriteClaim("sole")


@dataclass(frozen=True)
class LocalFile:
    """A download served from an open local file: ``length`` bytes from its current position."""

    file: BinaryIO
    length: int


@dataclass(frozen=True)
class Redirect:
    """A download the client fetches itself, from a short-lived URL: ``length`` bytes it gets there."""

    url: str
    length: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Stream:
    """A download proxied through the server: ``length`` bytes in bounded chunks.

    The store has already asked for the bytes, so a missing blob or an unreachable
    store raises ``StorageError`` before a response starts. Close the iterator
    (``StreamingHttpResponse`` does) to release the connection.
    """

    chunks: Iterator[bytes]
    length: int


Download = LocalFile | Redirect | Stream


class StoredObject(NamedTuple):
    """Something the store holds, as garbage collection's storage sweep sees it.

    ``upload_id`` is the upload session that wrote it: a blob's key names it
    too. ``is_blob``: a committed blob (deleted with ``delete(key)``), else a
    leftover of an upload (freed with ``abort(upload_id, {})``). ``size`` is 0
    for an S3 multipart upload in progress.
    """

    key: str
    modified: datetime
    upload_id: str
    is_blob: bool
    size: int


# The interface's calls, counted by backend and operation (``crow_storage_operations``) in one place:
# every backend's implementation of them is wrapped when its class is defined.
MEASURED = frozenset(
    {
        "read_upload",
        "start_upload",
        "write",
        "commit",
        "rollback",
        "abort",
        "stored_size",
        "exists",
        "download",
        "read",
        "delete",
        "iter_keys",
        "probe",
    }
)


def _measured(backend: str, operation: str, function: Callable) -> Callable:
    """``function``, counting its calls and the ones that raised (while iterating, for a lazy one)."""

    @wraps(function)
    def call(*args, **kwargs):
        calls, errors = metrics.bound_storage(backend, operation)
        calls.inc()
        try:
            result = function(*args, **kwargs)
        except BaseException:
            errors.inc()
            raise
        if isinstance(result, Iterator):
            return _counting_errors(result, errors)
        if isinstance(result, Redirect):
            # The client fetches these bytes from the store itself: what the registry did not send.
            metrics.bound_served("redirect").inc(result.length)
        return result

    call.measured = True  # type: ignore[attr-defined]
    return call


def _counting_errors(items: Iterator, errors) -> Iterator:
    try:
        yield from items
    except GeneratorExit:
        raise
    except BaseException:
        errors.inc()
        raise


class BlobStore(ABC):
    #: The ``backend`` label of this store's calls in ``crow_storage_operations``.
    backend: str = "store"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for operation in MEASURED & cls.__dict__.keys():
            function = cls.__dict__[operation]
            if callable(function) and not getattr(function, "measured", False):
                setattr(cls, operation, _measured(cls.backend, operation, function))

    #: The chunk size clients are asked to send at least (``OCI-Chunk-Min-Length``); 0 for none.
    preferred_chunk_size: int = 0
    #: Whether an upload's bytes can be read back cheaply (``read_upload``): then they are hashed once,
    #: at commit, with OpenSSL's SHA-256, instead of chunk by chunk with a resumable hasher whose state
    #: is saved between requests (registry.uploads).
    rereads_uploads: bool = False

    def read_upload(
        self, upload_id: str, state: dict, size: int, claim: WriteClaim = SOLE_WRITER
    ) -> Iterator[bytes]:
        """The first ``size`` bytes written to an upload not committed yet (if ``rereads_uploads``)."""
        raise NotImplementedError

    @abstractmethod
    def start_upload(self, upload_id: str) -> dict:
        """Prepare a new upload; returns its initial state."""

    @abstractmethod
    def write(
        self, upload_id: str, state: dict, offset: int, data: Iterable[bytes], claim: WriteClaim = SOLE_WRITER
    ) -> dict:
        """Append ``data`` to the upload, whose committed length is ``offset``; returns the new state.

        Anything a failed earlier write left past ``offset`` is discarded. Raises ``Fenced`` once
        ``claim`` was taken over: no byte of this call reaches the upload after that.
        """

    @abstractmethod
    def commit(
        self, upload_id: str, state: dict, digest: str, size: int, claim: WriteClaim = SOLE_WRITER
    ) -> str:
        """Make the upload's first ``size`` bytes the blob ``digest`` (already verified); returns its key."""

    @abstractmethod
    def rollback(self, upload_id: str, offset: int, claim: WriteClaim) -> None:
        """Free what ``claim`` wrote past ``offset`` (the saved length) and was never saved: after a failed
        write, so that the space is free when the request ends. Touches nothing a newer claim owns."""

    @abstractmethod
    def abort(self, upload_id: str, state: dict) -> None:
        """Forget the upload and whatever it stored, at once, fencing any request still writing to it.
        Safe to call twice."""

    @abstractmethod
    def stored_size(self, upload_id: str, state: dict) -> int:
        """How many bytes the store holds for an upload not committed yet (what ``abort`` frees)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def download(self, key: str, digest: str, start: int, length: int) -> Download:
        """How a client gets ``length`` bytes of the blob at ``key`` from ``start``."""

    @abstractmethod
    def read(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The blob's bytes in bounded chunks (for verification and backups)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob at ``key``; a missing one is not an error."""

    @abstractmethod
    def probe(self) -> None:
        """Raise ``StorageError`` unless the store answers (``/readyz``): one cheap call, no blob read."""

    def iter_keys(self) -> Iterator[StoredObject]:
        """Every blob object and upload leftover in the store, in no particular order, listed lazily."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its objects")
