"""Blobs as files: ``<root>/blobs/sha256/ab/abcdef.../<upload id>``, uploads in ``<root>/uploads/<id>``.

Uploads and blobs live under one root so that a commit is a ``rename`` on one
filesystem: a blob appears whole or not at all. Bytes are fsynced before the
rename, and the directory after it.

A blob's key names the digest *and* the upload that stored it, so a key is
never reused: garbage collection deleting an old copy can never remove the
bytes of a newer upload of the same digest.
"""

import contextlib
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from registry.storage.base import BlobStore, Download, LocalFile, StorageError, StoredObject

READ_CHUNK = 1024 * 1024
# The largest write(2) into an upload file. Measured on this project's VMs: 512 MiB written
# in 1 MiB writes cost 0.64-0.67 s of kernel time after a few idle seconds, in 32-256 KiB
# writes 0.09-0.12 s (probably: the page cache takes large writes in large folios, from free
# memory the hypervisor has taken back). A large push after a pause took a third longer.
WRITE_PIECE = 256 * 1024


class FilesystemStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.uploads = self.root / "uploads"

    @staticmethod
    def key_for(digest: str, upload_id: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"blobs/{algorithm}/{hex_[:2]}/{hex_}/{upload_id}"

    def path(self, key: str) -> Path:
        return self.root / key

    def upload_path(self, upload_id: str) -> Path:
        return self.uploads / upload_id

    def start_upload(self, upload_id: str) -> dict:
        try:
            self.uploads.mkdir(parents=True, exist_ok=True)
            self.upload_path(upload_id).touch()
        except OSError as exc:
            raise StorageError(f"cannot create upload file: {exc.strerror}") from exc
        return {}

    def write(self, upload_id: str, state: dict, offset: int, chunks: Iterable[bytes]) -> dict:
        path = self.upload_path(upload_id)
        try:
            with open(path, "r+b") as file:
                file.truncate(offset)
                file.seek(offset)
                for chunk in chunks:
                    _write_in_pieces(file, chunk)
        except FileNotFoundError as exc:
            raise StorageError("upload file is missing") from exc
        except OSError as exc:
            raise StorageError(f"cannot write upload file: {exc.strerror}") from exc
        return state

    rereads_uploads = True  # from the page cache, as fast as memory

    def read_upload(self, upload_id: str, state: dict, size: int) -> Iterator[bytes]:
        try:
            with open(self.upload_path(upload_id), "rb") as file:
                left = size
                while left > 0:
                    chunk = file.read(min(left, READ_CHUNK))
                    if not chunk:
                        raise StorageError(f"upload file ends {left} bytes short of {size}")
                    left -= len(chunk)
                    yield chunk
        except FileNotFoundError as exc:
            raise StorageError("upload file is missing") from exc
        except OSError as exc:
            raise StorageError(f"cannot read upload file: {exc.strerror}") from exc

    def commit(self, upload_id: str, state: dict, digest: str, size: int) -> str:
        source = self.upload_path(upload_id)
        key = self.key_for(digest, upload_id)
        target = self.path(key)
        try:
            with open(source, "r+b") as file:
                file.truncate(size)
                os.fsync(file.fileno())
            _rename_into(source, target)
            _fsync_directory(target.parent)
        except OSError as exc:
            raise StorageError(f"cannot store blob: {exc.strerror}") from exc
        return key

    def abort(self, upload_id: str, state: dict) -> None:
        self.upload_path(upload_id).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def download(self, key: str, digest: str, start: int, length: int) -> Download:
        try:
            file = open(self.path(key), "rb")  # noqa: SIM115 - the response closes it
        except OSError as exc:
            raise StorageError(f"cannot open blob {digest}: {exc.strerror}") from exc
        file.seek(start)
        return LocalFile(file=file, length=length)

    def read(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        with open(self.path(key), "rb") as file:
            while chunk := file.read(chunk_size):
                yield chunk

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the digest's directory, once its last copy is gone

    def iter_keys(self) -> Iterator[StoredObject]:
        for directory, is_blob in ((self.blobs, True), (self.uploads, False)):
            for parent, _, names in os.walk(directory):
                for name in names:
                    path = Path(parent) / name
                    try:
                        stat = path.stat()
                    except FileNotFoundError:
                        continue  # deleted or committed while we listed
                    key = path.relative_to(self.root).as_posix()
                    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                    yield StoredObject(key, modified, name, is_blob, stat.st_size)


def _write_in_pieces(file: BinaryIO, chunk: bytes) -> None:
    view = memoryview(chunk)
    for start in range(0, len(view), WRITE_PIECE):
        file.write(view[start : start + WRITE_PIECE])


def _rename_into(source: Path, target: Path, attempts: int = 3) -> None:
    """Rename ``source`` to ``target``, creating its directory; again if the directory vanished in
    between (``delete`` removes a digest's directory with its last copy, e.g. gc deleting an older
    upload of the same digest)."""
    for attempt in range(attempts):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
            return
        except FileNotFoundError:
            if attempt == attempts - 1 or not source.exists():
                raise


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
