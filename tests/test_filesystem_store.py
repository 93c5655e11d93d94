"""The filesystem store's commit against garbage collection removing directories under it."""

import os
from pathlib import Path

import pytest

from registry.storage import filesystem
from registry.storage.filesystem import FilesystemStore

DIGEST = "sha256:" + "ab" * 32


def test_commit_survives_gc_removing_the_digest_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemStore(tmp_path)
    state = store.write("u1", store.start_upload("u1"), 0, [b"the bytes"])
    rename = os.replace
    removed: list[Path] = []

    def replace_after_gc(source: str, target: str) -> None:
        if not removed:  # gc deleted the digest's last older copy, and its directory, just now
            removed.append(Path(target).parent)
            Path(target).parent.rmdir()
        rename(source, target)

    monkeypatch.setattr(filesystem.os, "replace", replace_after_gc)
    key = store.commit("u1", state, DIGEST, 9)

    assert removed
    assert store.path(key).read_bytes() == b"the bytes"


def test_commit_of_a_missing_upload_fails_as_storage(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    state = store.start_upload("u1")
    store.abort("u1", state)

    with pytest.raises(filesystem.StorageError):
        store.commit("u1", state, DIGEST, 0)


def test_large_chunks_are_written_in_pieces_and_land_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chunk over WRITE_PIECE goes to the file in several writes; none of its bytes may be lost,
    # doubled or reordered, whatever its size and offset.
    monkeypatch.setattr(filesystem, "WRITE_PIECE", 1000)
    store = FilesystemStore(tmp_path)
    chunks = [os.urandom(size) for size in (1, 999, 1000, 1001, 4321, 0, 2000)]
    data = b"".join(chunks)
    state = store.write("u1", store.start_upload("u1"), 0, chunks[:4])
    state = store.write("u1", state, len(b"".join(chunks[:4])), chunks[4:])

    key = store.commit("u1", state, DIGEST, len(data))

    assert store.path(key).read_bytes() == data
