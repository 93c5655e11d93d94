"""An upload's SHA-256, computed the cheapest way its blob store allows.

A store that cannot read an upload back cheaply (S3: it would download the
blob again) gets a resumable hasher (rehashes) whose state is saved in the
session row after every chunk, so any process can take the next one.

A store that can (the filesystem, from the page cache) gets OpenSSL's SHA-256
(hashlib): twice as fast as the resumable one where the CPU has no SHA
instructions, and it releases the GIL while it hashes. Its state cannot be
saved, so each process keeps the hasher of the last chunk it wrote to an
upload (``RECENT``, by upload and offset). The next request of that upload
continues it when it lands in the same process, which keep-alive makes the
rule (a client sends its PATCH and PUT on one connection); anywhere else the
chunks go unhashed and the finishing request reads the upload back and hashes
it once.
"""

import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import rehashes

from registry.models import Upload
from registry.storage.base import BlobStore

Hasher = Any  # hashlib's sha256 object, or rehashes.PySha256: both take update()


class RecentHashers:
    """The OpenSSL hashers of the uploads this process wrote last, by (upload, offset); bounded."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._hashers: OrderedDict[tuple[uuid.UUID, int], Hasher] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, upload_id: uuid.UUID, offset: int) -> Hasher | None:
        with self._lock:
            return self._hashers.pop((upload_id, offset), None)

    def keep(self, upload_id: uuid.UUID, offset: int, hasher: Hasher) -> None:
        with self._lock:
            self._hashers[(upload_id, offset)] = hasher
            while len(self._hashers) > self._size:
                self._hashers.popitem(last=False)


RECENT = RecentHashers(1024)


def initial_state() -> bytes:
    return rehashes.PySha256().serialize()


def hasher_for(upload: Upload, store: BlobStore) -> Hasher | None:
    """What hashes the next chunk of ``upload``: None when the finishing request will read it back."""
    if not store.rereads_uploads:
        return rehashes.PySha256.deserialize(upload.hash_state)
    hasher = RECENT.take(upload.id, upload.offset)
    if hasher is None and upload.offset == 0:
        hasher = hashlib.sha256()
    return hasher


def written(upload: Upload, store: BlobStore, hasher: Hasher | None) -> None:
    """After a chunk is stored, before the row is saved: the resumable hasher's state goes in the row."""
    if not store.rereads_uploads:
        upload.hash_state = hasher.serialize()


def saved(upload: Upload, store: BlobStore, hasher: Hasher | None) -> None:
    """After the row is saved, and only then: this process keeps the OpenSSL hasher for the next chunk.

    Bytes below a saved offset never change, so a hasher kept for (upload, offset) stays right.
    """
    if store.rereads_uploads and hasher is not None:
        RECENT.keep(upload.id, upload.offset, hasher)


def digest(store: BlobStore, hasher: Hasher | None, reread: Callable[[], Iterator[bytes]]) -> str:
    """``sha256:<hex>`` of the whole upload; ``reread`` gives its bytes when no hasher has them all."""
    if hasher is None:
        hasher = hashlib.sha256()
        for chunk in reread():
            hasher.update(chunk)
    if store.rereads_uploads:
        return "sha256:" + hasher.hexdigest()
    return "sha256:" + hasher.finalize()
