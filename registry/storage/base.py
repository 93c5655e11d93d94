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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, NamedTuple


class StorageError(Exception):
    """The store failed (unreachable, full, refused): the request may be retried."""


@dataclass(frozen=True)
class LocalFile:
    """A download served from an open local file: ``length`` bytes from its current position."""

    file: BinaryIO
    length: int


@dataclass(frozen=True)
class Redirect:
    """A download the client fetches itself, from a short-lived URL."""

    url: str


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


class BlobStore(ABC):
    #: The chunk size clients are asked to send at least (``OCI-Chunk-Min-Length``); 0 for none.
    preferred_chunk_size: int = 0
    #: Whether an upload's bytes can be read back cheaply (``read_upload``): then they are hashed once,
    #: at commit, with OpenSSL's SHA-256, instead of chunk by chunk with a resumable hasher whose state
    #: is saved between requests (registry.uploads).
    rereads_uploads: bool = False

    def read_upload(self, upload_id: str, state: dict, size: int) -> Iterator[bytes]:
        """The first ``size`` bytes written to an upload not committed yet (if ``rereads_uploads``)."""
        raise NotImplementedError

    @abstractmethod
    def start_upload(self, upload_id: str) -> dict:
        """Prepare a new upload; returns its initial state."""

    @abstractmethod
    def write(self, upload_id: str, state: dict, offset: int, chunks: Iterable[bytes]) -> dict:
        """Append ``chunks`` to the upload, whose committed length is ``offset``; returns the new state.

        Anything a failed earlier write left past ``offset`` is discarded.
        """

    @abstractmethod
    def commit(self, upload_id: str, state: dict, digest: str, size: int) -> str:
        """Make the upload's first ``size`` bytes the blob ``digest`` (already verified); returns its key."""

    @abstractmethod
    def abort(self, upload_id: str, state: dict) -> None:
        """Forget the upload and whatever it stored. Safe to call twice."""

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

    def iter_keys(self) -> Iterator[StoredObject]:
        """Every blob object and upload leftover in the store, in no particular order, listed lazily."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its objects")
