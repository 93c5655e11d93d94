"""The filesystem store: its commit against gc removing directories under it, and its fenced writes."""

import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from registry.storage import Fenced, WriteClaim, filesystem, upload_files
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


def test_commit_survives_gc_removing_the_digest_directory_while_it_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mkdir(exist_ok=True)`` finds the directory there, then gone: it raises FileExistsError (seen
    when concurrent pushes raced gc on a real server)."""
    store = FilesystemStore(tmp_path)
    state = store.write("u1", store.start_upload("u1"), 0, [b"the bytes"])
    make = Path.mkdir
    raced: list[Path] = []

    def mkdir_racing_gc(self: Path, *args, **kwargs) -> None:
        if not raced and self.name == DIGEST.split(":")[1]:
            raced.append(self)
            raise FileExistsError(17, "File exists", str(self))
        make(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir_racing_gc)
    key = store.commit("u1", state, DIGEST, 9)

    assert raced
    assert store.path(key).read_bytes() == b"the bytes"


def test_commit_of_a_cancelled_upload_is_fenced(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    state = store.start_upload("u1")
    store.abort("u1", state)

    with pytest.raises(Fenced):
        store.commit("u1", state, DIGEST, 0)


def test_large_chunks_are_written_in_pieces_and_land_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chunk over WRITE_PIECE goes to the file in several writes; none of its bytes may be lost,
    # doubled or reordered, whatever its size and offset.
    monkeypatch.setattr(upload_files, "WRITE_PIECE", 1000)
    store = FilesystemStore(tmp_path)
    chunks = [os.urandom(size) for size in (1, 999, 1000, 1001, 4321, 0, 2000)]
    data = b"".join(chunks)
    state = store.write("u1", store.start_upload("u1"), 0, chunks[:4])
    state = store.write("u1", state, len(b"".join(chunks[:4])), chunks[4:])

    key = store.commit("u1", state, DIGEST, len(data))

    assert store.path(key).read_bytes() == data


# --- Fenced writes: once a request lost its claim, no byte it holds reaches the upload or the blob ---


def interrupted(first: bytes, meanwhile: Callable[[], object], then: bytes) -> Iterator[bytes]:
    """A body that sends ``first``, stalls while ``meanwhile`` runs (another request), then sends ``then``."""
    yield first
    meanwhile()
    yield then


def test_a_takeover_fences_the_writer_it_took_over_from(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    state = store.start_upload("u1")
    b_took_over = partial(store.write, "u1", state, 0, [b"B" * 3000], WriteClaim("b"))

    with pytest.raises(Fenced):
        store.write("u1", state, 0, interrupted(b"A" * 2000, b_took_over, b"X" * 1000), WriteClaim("a"))

    key = store.commit("u1", state, DIGEST, 3000, WriteClaim("b"))
    assert store.path(key).read_bytes() == b"B" * 3000


def test_a_commit_fences_a_late_writer(tmp_path: Path) -> None:
    # The scenario: the stale writer's descriptor still points at the inode that became the blob.
    store = FilesystemStore(tmp_path)
    state = store.start_upload("u1")
    keys: list[str] = []

    def b_pushes_and_commits() -> None:
        store.write("u1", state, 0, [b"B" * 8000], WriteClaim("b"))
        keys.append(store.commit("u1", state, DIGEST, 8000, WriteClaim("b")))

    with pytest.raises(Fenced):
        store.write(
            "u1", state, 0, interrupted(b"A" * 2000, b_pushes_and_commits, b"X" * 1000), WriteClaim("a")
        )

    assert store.path(keys[0]).read_bytes() == b"B" * 8000


def test_a_cancel_frees_the_file_at_once_and_fences_its_writer(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    state = store.start_upload("u1")

    def cancelled() -> None:
        store.abort("u1", state)
        assert not (tmp_path / "uploads" / "u1").exists()

    with pytest.raises(Fenced):
        store.write("u1", state, 0, interrupted(b"A" * 2000, cancelled, b"X"), WriteClaim("a"))
    assert not (tmp_path / "uploads" / "u1").exists()


def test_a_stale_taker_asks_before_it_cuts_bytes_it_did_not_see(tmp_path: Path) -> None:
    # B saved 3000 bytes; A claimed at offset 1000 long before and takes the file only now.
    store = FilesystemStore(tmp_path)
    state = store.write("u1", store.start_upload("u1"), 0, [b"B" * 3000], WriteClaim("b"))
    asked: list[bool] = []

    def lost() -> None:
        asked.append(True)
        raise Fenced("the claim is gone")

    with pytest.raises(Fenced):
        store.write("u1", state, 1000, [b"X"], WriteClaim("a", lost))

    assert asked
    key = store.commit("u1", state, DIGEST, 3000, WriteClaim("c"))
    assert store.path(key).read_bytes() == b"B" * 3000


def test_a_taker_at_the_saved_length_needs_no_question(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    state = store.write("u1", store.start_upload("u1"), 0, [b"saved"], WriteClaim("a"))

    def never() -> None:
        raise AssertionError("asked the database")

    store.write("u1", state, 5, [b" more"], WriteClaim("b", never))
    assert store.path(store.commit("u1", state, DIGEST, 10, WriteClaim("b"))).read_bytes() == b"saved more"


def test_a_rollback_cuts_what_the_failed_write_added(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    state = store.write("u1", store.start_upload("u1"), 0, [b"saved"], WriteClaim("a"))

    def breaks_off() -> Iterator[bytes]:
        yield b"partial" * 1000
        raise ConnectionResetError("client went away")

    with pytest.raises(filesystem.StorageError):
        store.write("u1", state, 5, breaks_off(), WriteClaim("b"))
    assert store.stored_size("u1", state) == 5 + 7000
    store.rollback("u1", 5, WriteClaim("b"))
    assert store.stored_size("u1", state) == 5
    store.rollback("u1", 0, WriteClaim("a"))  # not its name any more: nothing happens
    assert store.stored_size("u1", state) == 5


def test_the_sweep_sees_an_upload_by_its_directory(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    store.write("u1", store.start_upload("u1"), 0, [b"bytes"], WriteClaim("a"))

    [item] = store.iter_keys()
    assert (item.key, item.upload_id, item.is_blob, item.size) == ("uploads/u1/a", "u1", False, 5)
