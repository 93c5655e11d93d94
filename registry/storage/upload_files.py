"""An upload's data file, fenced: a request that lost its claim can change no byte of it.

Each upload is a directory ``uploads/<id>/`` holding exactly one data file,
named after the claim that last took it (``WriteClaim.token``; ``new`` before
the first). A request *takes* the file after winning its claim in the
database: it opens the file, locks it (``flock``), checks that the name it
opened is still that file, renames it to its own token and unlocks. Every
later change — each ``WRITE_PIECE`` of a write, a truncation, the commit's
rename into ``blobs/``, a read-back — happens under the lock and only after
checking that ``uploads/<id>/<token>`` is still the inode the request holds
open (``os.stat`` against the inode at open). A takeover (a newer claim
renaming the file to its own token), a commit (renaming it into ``blobs/``) or
a cancel (unlinking it), each under the lock, therefore fences every older
request at its next piece: ``Fenced``, and not one more byte. ``flock`` belongs
to the open file description, so two threads of one process exclude each
other too. The cost is four syscalls (lock, stat, unlock, and the write
itself) per 256 KiB piece.

Why a takeover asks the database, sometimes. A request could win its claim,
stall past the lease, and only then take the file: from a newer claim that
has since written and saved more. Renaming is harmless (the newer request is
fenced and retries); truncating to the stale offset would destroy saved
bytes. Bytes below a saved offset are never changed, so the file is at least
the saved length, and exactly that unless a request died or was fenced after
writing more. A taker whose offset equals the file's length can truncate
nothing and only appends: it needs no check (if it is stale, its save fails,
and what it appended lies past the saved offset, which the next taker cuts).
A taker that finds the file longer than its offset confirms its claim in the
database (``WriteClaim.confirm``) before cutting: if the claim holds, no one
can have saved since it was won. So the usual request costs no query more,
and no clock is trusted for safety.
"""

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from registry.storage.base import Fenced, StorageError, StorageFull, WriteClaim

READ_CHUNK = 1024 * 1024
# The largest write(2) into an upload file. Measured on this project's VMs: 512 MiB written
# in 1 MiB writes cost 0.64-0.67 s of kernel time after a few idle seconds, in 32-256 KiB
# writes 0.09-0.12 s (probably: the page cache takes large writes in large folios, from free
# memory the hypervisor has taken back). A large push after a pause took a third longer.
WRITE_PIECE = 256 * 1024
FIRST_NAME = "new"  # the data file's name until a request takes it
TAKE_ATTEMPTS = 10  # a file renamed between listing and locking is looked for again
GONE = "the upload was taken over, committed or cancelled"
_FULL = {errno.ENOSPC, errno.EDQUOT}


def storage_error(action: str, exc: OSError, root: Path) -> StorageError:
    """``exc`` as the store's error: ``StorageFull`` for a full disk or quota, else ``StorageError``."""
    if exc.errno in _FULL:
        return StorageFull(f"{action}: {exc.strerror}", str(root))
    return StorageError(f"{action}: {exc.strerror}")


class HeldFile:
    """The data file of an upload, opened by the request whose claim it is named after."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.inode = os.fstat(fd).st_ino

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "HeldFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock; raises ``Fenced`` if the file no longer carries this request's name."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            if not _is(self.path, self.inode):
                raise Fenced(GONE)
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def truncate(self, length: int) -> None:
        with self.locked():
            os.ftruncate(self.fd, length)

    def write_at(self, position: int, chunk: bytes) -> int:
        """Write ``chunk`` at ``position`` in pieces, each under the lock; returns the position after it."""
        view = memoryview(chunk)
        for start in range(0, len(view), WRITE_PIECE):
            piece = view[start : start + WRITE_PIECE]
            with self.locked():
                while piece:
                    written = os.pwrite(self.fd, piece, position)
                    position += written
                    piece = piece[written:]
        return position

    def read(self, size: int) -> Iterator[bytes]:
        """The first ``size`` bytes, each chunk read under the lock."""
        position = 0
        while position < size:
            with self.locked():
                chunk = os.pread(self.fd, min(size - position, READ_CHUNK), position)
            if not chunk:
                raise StorageError(f"upload file ends {size - position} bytes short of {size}")
            position += len(chunk)
            yield chunk


def take(directory: Path, offset: int, claim: WriteClaim) -> HeldFile:
    """Open the upload's data file and name it after ``claim``; ``offset`` is the length the claim
    read from the database. Raises ``Fenced`` if the upload is gone or the claim lost."""
    own = directory / claim.token
    for _ in range(TAKE_ATTEMPTS):
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            raise Fenced(GONE) from None
        if not names:
            raise Fenced(GONE)  # committed or cancelled a moment ago
        if len(names) > 1:
            raise StorageError(f"upload {directory.name} holds {sorted(names)}, not one data file")
        path = directory / names[0]
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # renamed or removed since the listing: look again
        held = HeldFile(path, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not _is(path, held.inode):
                held.close()
                continue
            if path != own:
                _check_length(held.size(), offset, claim)
                os.rename(path, own)
                held.path = own
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            held.close()
            raise
        return held
    raise Fenced(f"upload {directory.name} kept moving: {GONE}")


def _check_length(length: int, offset: int, claim: WriteClaim) -> None:
    """Whether a taker at ``offset`` may take a file of ``length`` bytes (see the module docstring)."""
    if length < offset:
        raise StorageError(f"upload file has {length} bytes, fewer than the {offset} saved")
    if length > offset:
        claim.confirm()  # raises Fenced unless no one can have saved since the claim was won


def own(directory: Path, claim: WriteClaim) -> HeldFile | None:
    """The data file if it still carries ``claim``'s name (for a rollback), else None."""
    try:
        fd = os.open(directory / claim.token, os.O_RDWR)
    except FileNotFoundError:
        return None
    return HeldFile(directory / claim.token, fd)


def remove(directory: Path) -> None:
    """Unlink the upload's data file under its lock (fencing its writer), then the directory."""
    for _ in range(TAKE_ATTEMPTS):
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                _unlink_locked(directory / name)
        with contextlib.suppress(FileNotFoundError):
            try:
                directory.rmdir()
                return
            except OSError as exc:
                if exc.errno != errno.ENOTEMPTY:
                    raise


def _unlink_locked(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _is(path, os.fstat(fd).st_ino):
            path.unlink()
    finally:
        os.close(fd)


def stored_size(directory: Path) -> int:
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            with contextlib.suppress(FileNotFoundError):
                total += entry.stat().st_size
    return total


def _is(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except FileNotFoundError:
        return False
