"""An upload's SHA-256, computed the cheapest way its blob store allows.

A store that cannot read an upload back cheaply (S3: it would download the
blob again) gets a resumable hasher (rehashes) whose state is saved in the
session row after every chunk, so any process can take the next one.

A store that can (the filesystem, from the page cache) gets OpenSSL's SHA-256
(hashlib): twice as fast as the resumable one where the CPU has no SHA
instructions, and it releases the GIL while it hashes. Its state cannot be
saved, so the row's ``hash_state`` holds instead the finished digest of the
bytes so far (``sha256:<hex>``, written with the offset it belongs to), or
nothing when no one hasher saw them all. A request hashes its chunk when it
starts the upload, or when this process keeps the hasher of the chunk before
(``RECENT``, by upload and offset); otherwise its chunk is stored unhashed and
the finishing request reads the upload back and hashes it once.

So the usual push, a PATCH with the whole blob and an empty PUT, hashes as the
bytes arrive and its PUT reads the digest from the row, whichever workers the
two requests land on (skopeo opens a connection per request); chunks spread
over workers cost one read-back at the end.
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
KNOWN = b"sha256:"  # a filesystem row's hash_state: the digest of its first ``offset`` bytes


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


def initial_state(store: BlobStore) -> bytes:
    if store.rereads_uploads:
        return KNOWN + hashlib.sha256().hexdigest().encode()
    return rehashes.PySha256().serialize()


def hasher_for(upload: Upload, store: BlobStore) -> Hasher | None:
    """What hashes the chunk a request brings; None: the chunk goes unhashed (read back at the end)."""
    if not store.rereads_uploads:
        return rehashes.PySha256.deserialize(upload.hash_state)
    hasher = RECENT.take(upload.id, upload.offset)
    if hasher is None and upload.offset == 0:
        hasher = hashlib.sha256()
    return hasher


def written(upload: Upload, store: BlobStore, hasher: Hasher | None) -> None:
    """After a chunk is stored, before the row is saved with its new offset: the state that goes with it."""
    if not store.rereads_uploads:
        upload.hash_state = hasher.serialize()
    else:
        upload.hash_state = KNOWN + hasher.hexdigest().encode() if hasher is not None else b""


def saved(upload: Upload, store: BlobStore, hasher: Hasher | None) -> None:
    """After the row is saved, and only then: this process keeps the OpenSSL hasher for the next chunk.

    Bytes below a saved offset never change, so a hasher kept for (upload, offset) stays right.
    """
    if store.rereads_uploads and hasher is not None:
        RECENT.keep(upload.id, upload.offset, hasher)


def digest(
    upload: Upload, store: BlobStore, hasher: Hasher | None, reread: Callable[[], Iterator[bytes]]
) -> str:
    """``sha256:<hex>`` of the whole upload; ``reread`` gives its bytes when nothing saw them all."""
    if not store.rereads_uploads:
        return "sha256:" + hasher.finalize()
    if hasher is not None:
        return "sha256:" + hasher.hexdigest()
    state = bytes(upload.hash_state)
    if state.startswith(KNOWN):
        return state.decode()
    hasher = hashlib.sha256()
    for chunk in reread():
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()
