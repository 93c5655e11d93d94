"""Where a backup is kept: a directory, or a prefix in an S3 bucket (``s3://bucket/prefix``).

A layout stores blobs by digest and a few named files. Every write appears
whole or not at all: a directory writes to a temporary file in ``.crow-tmp/``,
fsyncs it and renames it into place; S3 shows an object only once its upload
completes. A blob is hashed while it streams in and is only put in place if
its digest and size are the ones expected (``CorruptBlob`` otherwise), so a
layout never holds a blob under the wrong name.

This module holds the interface and the directory; ``registry.backup.s3`` the
bucket, and ``registry.backup.locations`` picks one for a location.
"""

import errno
import fcntl
import hashlib
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from registry.backup.format import blob_path

CHUNK = 1024 * 1024
TEMP_DIR = ".crow-tmp"
LOCK = ".crow-lock"


class LayoutError(Exception):
    """The backup location failed: missing, not writable, full, unreachable."""


class CorruptBlob(Exception):
    def __init__(self, digest: str, computed: str, size: int, expected_size: int) -> None:
        self.digest, self.computed, self.size, self.expected_size = digest, computed, size, expected_size
        if size != expected_size:
            problem = f"has {size} bytes, not {expected_size}"
        else:
            problem = f"its bytes hash to {computed}"
        super().__init__(f"blob {digest} is corrupt: {problem}")


def verified(chunks: Iterable[bytes], digest: str, size: int) -> Iterator[bytes]:
    """``chunks``, hashed on the way; raises ``CorruptBlob`` after the last one if they are not ``digest``."""
    algorithm = digest.split(":", 1)[0]
    hasher = hashlib.new(algorithm)
    received = 0
    for chunk in chunks:
        hasher.update(chunk)
        received += len(chunk)
        if received > size:
            break  # no need to read on: it is wrong already
        yield chunk
    computed = f"{algorithm}:{hasher.hexdigest()}"
    if computed != digest or received != size:
        raise CorruptBlob(digest, computed, received, size)


class Layout(ABC):
    description: str

    @abstractmethod
    def prepare(self) -> None:
        """Make the location ready for writing (create it, clear temporary leftovers)."""

    @abstractmethod
    def blob_size(self, digest: str) -> int | None:
        """The size of the stored blob ``digest``, or None if there is none."""

    @abstractmethod
    def write_blob(self, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        """Store ``chunks`` as ``digest``, verifying them (``CorruptBlob``): all or nothing."""

    @abstractmethod
    def read_blob(self, digest: str) -> Iterator[bytes]: ...

    @abstractmethod
    def write_file(self, name: str, data: bytes) -> None:
        """Store a named file whole or not at all; it is durable once this returns."""

    @abstractmethod
    def read_file(self, name: str) -> bytes | None:
        """The named file, or None if there is none."""

    @abstractmethod
    def blob_digests(self) -> Iterator[str]:
        """Every digest stored (for pruning)."""

    @abstractmethod
    def delete_blob(self, digest: str) -> None: ...

    @abstractmethod
    def sync(self) -> None:
        """Make every blob written so far durable (before the metadata names them)."""

    @abstractmethod
    def close(self) -> None:
        """Release what ``prepare`` took."""


class DirectoryLayout(Layout):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp = root / TEMP_DIR
        self.description = str(root)
        self._dirty: set[Path] = set()
        self._lock: BinaryIO | None = None

    def prepare(self) -> None:
        """Create the directory and lock it: one backup at a time writes to it."""
        if self.root.exists() and not self.root.is_dir():
            raise LayoutError(f"the destination {self.root} is not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.root / LOCK, "ab")  # noqa: SIM115 - held until close()
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(self.temp, ignore_errors=True)  # what an interrupted backup left
            self.temp.mkdir()
        except BlockingIOError:
            self.close()
            raise LayoutError(f"another backup is writing to {self.root}") from None
        except OSError as exc:
            self.close()
            raise self._error(exc, "create the backup directory") from exc

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # and with it the lock
            self._lock = None

    def blob_size(self, digest: str) -> int | None:
        try:
            return (self.root / blob_path(digest)).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(exc, f"look at {blob_path(digest)}") from exc

    def write_blob(self, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        target = self.root / blob_path(digest)
        self._write(target, verified(chunks, digest, size), f"write {blob_path(digest)}")
        self._dirty.add(target.parent)

    def read_blob(self, digest: str) -> Iterator[bytes]:
        try:
            with open(self.root / blob_path(digest), "rb") as file:
                while chunk := file.read(CHUNK):
                    yield chunk
        except OSError as exc:
            raise self._error(exc, f"read {blob_path(digest)}") from exc

    def write_file(self, name: str, data: bytes) -> None:
        self._write(self.root / name, [data], f"write {name}")
        self._fsync_directory(self.root, f"write {name}")

    def read_file(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(exc, f"read {name}") from exc

    def blob_digests(self) -> Iterator[str]:
        blobs = self.root / "blobs"
        if blobs.is_dir():
            for algorithm in blobs.iterdir():
                for path in algorithm.iterdir():
                    yield f"{algorithm.name}:{path.name}"

    def delete_blob(self, digest: str) -> None:
        (self.root / blob_path(digest)).unlink(missing_ok=True)

    def sync(self) -> None:
        for directory in self._dirty:
            self._fsync_directory(directory, "sync the blobs")
        self._dirty.clear()

    def _write(self, target: Path, chunks: Iterable[bytes], action: str) -> None:
        temp = self.temp / uuid.uuid4().hex
        try:
            with open(temp, "wb") as file:
                for chunk in chunks:
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
        except OSError as exc:
            raise self._error(exc, action) from exc
        finally:
            temp.unlink(missing_ok=True)

    def _fsync_directory(self, path: Path, action: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._error(exc, action) from exc

    def _error(self, exc: OSError, action: str) -> LayoutError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return LayoutError(f"the destination {self.root} is full: could not {action}")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return LayoutError(f"the destination {self.root} is not writable: could not {action}")
        if exc.errno in (errno.ENOTDIR, errno.EEXIST) and not self.root.is_dir():
            return LayoutError(f"the destination {self.root} is not a directory")
        return LayoutError(f"could not {action} in {self.root}: {exc.strerror or exc}")
