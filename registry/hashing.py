"""Upload hashing: an upload's digest, computed the cheapest way its blob store allows.

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

Each store gets one of the two strategies (``Resumable``, ``OpenSSL``), chosen
once per store by ``for_store``; ``registry.uploads`` calls its methods.

*sha512* (the spec's other algorithm) is rare, and an upload's algorithm is
only known when it finishes (the PUT's ``digest``), so the running hash stays
SHA-256 and nothing is added to a sha256 push. A request that finishes an
upload from its first byte (a monolithic POST or PUT) hashes with the
finishing algorithm too, as the bytes arrive (``Both``). Otherwise the
filesystem reads the upload back, and S3, which cannot read a multipart upload
before it is completed, verifies the committed object by reading it back
(``digest`` answers None): one more GET of the blob, for sha512 chunked
uploads only. Keeping a resumable SHA-512 state beside the SHA-256 one would
have cost every chunk of every push: rehashes' SHA-512 runs at about a third
of its SHA-256's speed here (209 against 697 MiB/s, 64 MiB in 1 MiB updates).
"""

import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

import rehashes

from registry.models import Upload
from registry.storage.base import BlobStore

Hasher = Any  # hashlib's objects, rehashes' PySha256, or Both: all take update()
FAST = "sha256"  # the running hash of every upload
ALGORITHMS = frozenset({"sha256", "sha512"})  # what uploads are verified with: the spec's registered ones
KNOWN = b"sha256:"  # a filesystem row's hash_state: the digest of its first ``offset`` bytes


def algorithm_of(digest: str) -> str:
    return digest.split(":", 1)[0]


def supported(digest: str) -> bool:
    return algorithm_of(digest) in ALGORITHMS


def of_chunks(algorithm: str, chunks: Iterable[bytes]) -> str:
    """``<algorithm>:<hex>`` of ``chunks``, with OpenSSL's hash."""
    hasher = hashlib.new(algorithm)
    for chunk in chunks:
        hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


class Both:
    """The upload's running SHA-256 (None: unhashed) and the finishing algorithm's hash, fed together."""

    def __init__(self, running: Hasher | None, final: Hasher) -> None:
        self.running = running
        self.final = final

    def update(self, chunk: bytes) -> None:
        if self.running is not None:
            self.running.update(chunk)
        self.final.update(chunk)


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


class Strategy:
    """How a store's uploads are hashed; ``for_store`` picks the one subclass a store gets, once.

    A request asks ``hasher_for`` what hashes its chunk, tells ``written`` once the chunk is
    stored (before the row is saved with its new offset) and ``saved`` once the row is saved,
    and the finishing request asks ``digest``.
    """

    def initial_state(self) -> bytes:
        """The new session row's ``hash_state``."""
        raise NotImplementedError

    def hasher_for(self, upload: Upload, algorithm: str = FAST) -> Hasher | None:
        """What hashes the chunk a request brings; None: the chunk goes unhashed (read back at the end).

        ``algorithm``: the one the request finishes the upload with (a PATCH: the running one).
        """
        running = self._running(upload)
        if algorithm == FAST or upload.offset != 0:
            return running
        return Both(running, hashlib.new(algorithm))

    def written(self, upload: Upload, hasher: Hasher | None) -> None:
        """After a chunk is stored, before the row is saved with its new offset: the state that goes
        with it."""
        self._written(upload, _running(hasher))

    def saved(self, upload: Upload, hasher: Hasher | None) -> None:
        """After the row is saved, and only then."""

    def digest(
        self,
        upload: Upload,
        hasher: Hasher | None,
        reread: Callable[[], Iterator[bytes]],
        algorithm: str = FAST,
    ) -> str | None:
        """``<algorithm>:<hex>`` of the whole upload; ``reread`` gives its bytes when nothing saw them all.

        None: the store cannot tell before the commit (S3, sha512 of a chunked upload); the caller
        verifies the committed blob (``of_chunks``).
        """
        if algorithm == FAST:
            return self._sha256(upload, _running(hasher), reread)
        if isinstance(hasher, Both):
            return f"{algorithm}:{hasher.final.hexdigest()}"
        return self._reread(algorithm, reread)

    def _running(self, upload: Upload) -> Hasher | None:
        raise NotImplementedError

    def _written(self, upload: Upload, hasher: Hasher | None) -> None:
        raise NotImplementedError

    def _sha256(self, upload: Upload, hasher: Hasher | None, reread: Callable[[], Iterator[bytes]]) -> str:
        raise NotImplementedError

    def _reread(self, algorithm: str, reread: Callable[[], Iterator[bytes]]) -> str | None:
        raise NotImplementedError


class Resumable(Strategy):
    """S3: a resumable SHA-256 whose state is saved in the row after every chunk."""

    def initial_state(self) -> bytes:
        return rehashes.PySha256().serialize()

    def _running(self, upload: Upload) -> Hasher | None:
        return rehashes.PySha256.deserialize(upload.hash_state)

    def _written(self, upload: Upload, hasher: Hasher | None) -> None:
        upload.hash_state = hasher.serialize()

    def _sha256(self, upload: Upload, hasher: Hasher | None, reread: Callable[[], Iterator[bytes]]) -> str:
        return "sha256:" + hasher.finalize()

    def _reread(self, algorithm: str, reread: Callable[[], Iterator[bytes]]) -> str | None:
        return None  # a multipart upload cannot be read before it is completed: verified after commit


class OpenSSL(Strategy):
    """The filesystem: OpenSSL's SHA-256 kept in the process, the digest so far in the row."""

    def initial_state(self) -> bytes:
        return KNOWN + hashlib.sha256().hexdigest().encode()

    def saved(self, upload: Upload, hasher: Hasher | None) -> None:
        # This process keeps the hasher for the next chunk. Bytes below a saved offset never change,
        # so a hasher kept for (upload, offset) stays right.
        running = _running(hasher)
        if running is not None:
            RECENT.keep(upload.id, upload.offset, running)

    def _running(self, upload: Upload) -> Hasher | None:
        hasher = RECENT.take(upload.id, upload.offset)
        if hasher is None and upload.offset == 0:
            hasher = hashlib.sha256()
        return hasher

    def _written(self, upload: Upload, hasher: Hasher | None) -> None:
        upload.hash_state = KNOWN + hasher.hexdigest().encode() if hasher is not None else b""

    def _sha256(self, upload: Upload, hasher: Hasher | None, reread: Callable[[], Iterator[bytes]]) -> str:
        if hasher is not None:
            return "sha256:" + hasher.hexdigest()
        state = bytes(upload.hash_state)
        if state.startswith(KNOWN):
            return state.decode()
        return of_chunks(FAST, reread())

    def _reread(self, algorithm: str, reread: Callable[[], Iterator[bytes]]) -> str | None:
        return of_chunks(algorithm, reread())


@cache
def for_store(store: BlobStore) -> Strategy:
    """The one place that tells the stores apart: by whether they read an upload back cheaply."""
    return OpenSSL() if store.rereads_uploads else Resumable()


def _running(hasher: Hasher | None) -> Hasher | None:
    return hasher.running if isinstance(hasher, Both) else hasher
