"""Blobs as files: ``<root>/blobs/sha256/ab/abcdef.../<upload id>``, uploads in ``<root>/uploads/<id>/``.

Uploads and blobs live under one root so that a commit is a ``rename`` on one
filesystem: a blob appears whole or not at all. Bytes are fsynced before the
rename, and the directory after it.

A blob's key names the digest *and* the upload that stored it, so a key is
never reused: garbage collection deleting an old copy can never remove the
bytes of a newer upload of the same digest.

An upload's directory holds one data file named after the claim that last
took it; every write, truncation, read-back and the commit happen under its
lock and only while it carries the writer's name, so a request that lost its
claim cannot change a byte (``registry.storage.upload_files``). A failed write
is cut back to the saved length (``rollback``) before its claim is released,
and a full disk is ``StorageFull``, not a retry.
"""

import contextlib
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from registry.storage import upload_files
from registry.storage.base import (
    SOLE_WRITER,
    BlobStore,
    Download,
    LocalFile,
    StorageError,
    StoredObject,
    WriteClaim,
)
from registry.storage.upload_files import storage_error


class FilesystemStore(BlobStore):
    backend = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.uploads = self.root / "uploads"

    @staticmethod
    def key_for(digest: str, upload_id: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"blobs/{algorithm}/{hex_[:2]}/{hex_}/{upload_id}"

    def probe(self) -> None:
        """The root is a directory this process can list and write in (the permission bits, not a write);
        a fresh one is made, as the first upload would."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with os.scandir(self.root) as entries:
                next(entries, None)
        except OSError as exc:
            raise storage_error(f"cannot list the blob root {self.root}", exc, self.root) from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"cannot write in the blob root {self.root}")

    def path(self, key: str) -> Path:
        return self.root / key

    def upload_directory(self, upload_id: str) -> Path:
        return self.uploads / upload_id

    def start_upload(self, upload_id: str) -> dict:
        directory = self.upload_directory(upload_id)
        try:
            directory.mkdir(parents=True)
            (directory / upload_files.FIRST_NAME).touch()
        except OSError as exc:
            raise storage_error("cannot create upload file", exc, self.root) from exc
        return {}

    def write(
        self, upload_id: str, state: dict, offset: int, data: Iterable[bytes], claim: WriteClaim = SOLE_WRITER
    ) -> dict:
        try:
            with upload_files.take(self.upload_directory(upload_id), offset, claim) as held:
                held.truncate(offset)
                position = offset
                for chunk in data:
                    position = held.write_at(position, chunk)
        except OSError as exc:
            raise storage_error("cannot write upload file", exc, self.root) from exc
        return state

    def rollback(self, upload_id: str, offset: int, claim: WriteClaim) -> None:
        held = upload_files.own(self.upload_directory(upload_id), claim)
        if held is None:
            return  # taken over, committed or cancelled: not this request's to cut
        with held:
            held.truncate(offset)

    rereads_uploads = True  # from the page cache, as fast as memory

    def read_upload(
        self, upload_id: str, state: dict, size: int, claim: WriteClaim = SOLE_WRITER
    ) -> Iterator[bytes]:
        try:
            with upload_files.take(self.upload_directory(upload_id), size, claim) as held:
                yield from held.read(size)
        except OSError as exc:
            raise storage_error("cannot read upload file", exc, self.root) from exc

    def commit(
        self, upload_id: str, state: dict, digest: str, size: int, claim: WriteClaim = SOLE_WRITER
    ) -> str:
        directory = self.upload_directory(upload_id)
        key = self.key_for(digest, upload_id)
        target = self.path(key)
        try:
            with upload_files.take(directory, size, claim) as held, held.locked():
                os.ftruncate(held.fd, size)
                os.fsync(held.fd)
                _rename_into(held.path, target)
                _fsync_directory(target.parent)
            with contextlib.suppress(OSError):
                directory.rmdir()
        except OSError as exc:
            raise storage_error("cannot store blob", exc, self.root) from exc
        return key

    def abort(self, upload_id: str, state: dict) -> None:
        directory = self.upload_directory(upload_id)
        try:
            if directory.is_file():  # an upload started before uploads had directories
                directory.unlink()
            else:
                upload_files.remove(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise storage_error(f"cannot remove upload {upload_id}", exc, self.root) from exc

    def stored_size(self, upload_id: str, state: dict) -> int:
        directory = self.upload_directory(upload_id)
        if directory.is_file():
            return directory.stat().st_size
        return upload_files.stored_size(directory)

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
                    # A blob is named by its upload; an upload's file by its claim, in the upload's directory.
                    upload_id = name if is_blob else path.relative_to(self.uploads).parts[0]
                    yield StoredObject(key, modified, upload_id, is_blob, stat.st_size)


def _rename_into(source: Path, target: Path, attempts: int = 3) -> None:
    """Rename ``source`` to ``target``, creating its directory; again if the directory vanished in
    between (``delete`` removes a digest's directory with its last copy, e.g. gc deleting an older
    upload of the same digest). ``mkdir`` itself can lose that race: it finds the directory there
    (EEXIST), then gone when it checks that it is one, and raises ``FileExistsError``."""
    for attempt in range(attempts):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            return
        except (FileNotFoundError, FileExistsError):
            if attempt == attempts - 1 or not source.exists():
                raise


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
