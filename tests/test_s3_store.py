"""The S3 backend against moto's S3 server, over HTTP on loopback.

moto accepts parts of any size above 5 MiB, unlike R2, so the part tests ask
the server which parts it holds (``ListParts``) just before each completion.
"""

import random
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from registry.storage import Redirect, StorageError, Stream, WriteClaim, blob_store
from registry.storage import s3 as s3_module
from registry.storage.s3 import MIN_PART_SIZE, S3Store
from tests.s3server import S3Server
from tests.server import free_port

PART = MIN_PART_SIZE
MiB = 1024 * 1024


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def cut(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` as chunks of ``sizes``, then the rest."""
    position = 0
    for size in sizes:
        yield data[position : position + size]
        position += size
    if position < len(data):
        yield data[position:]


def push(store: S3Store, upload_id: str, requests_: list[list[bytes]]) -> dict:
    """Feed each list of chunks as one write, as successive PATCHes would; returns the state."""
    state = store.start_upload(upload_id)
    offset = 0
    for chunks in requests_:
        state = store.write(upload_id, state, offset, iter(chunks))
        offset += sum(map(len, chunks))
    return state


def split(data: bytes, request_sizes: list[list[int]]) -> list[list[bytes]]:
    requests_, position = [], 0
    for sizes in request_sizes:
        chunks = []
        for size in sizes:
            chunks.append(data[position : position + size])
            position += size
        requests_.append(chunks)
    assert position == len(data)
    return requests_


@pytest.fixture
def parts_received(s3_server: S3Server, s3_store: S3Store) -> list[list[int]]:
    """Sizes of the parts the server holds at each completion, asked just before it."""
    received: list[list[int]] = []
    admin = s3_server.client()

    def record(params: dict, **kwargs: object) -> None:
        listing = admin.list_parts(Bucket=params["Bucket"], Key=params["Key"], UploadId=params["UploadId"])
        numbers = [part["PartNumber"] for part in params["MultipartUpload"]["Parts"]]
        sizes = {part["PartNumber"]: part["Size"] for part in listing["Parts"]}
        received.append([sizes[number] for number in numbers])

    s3_store.client.meta.events.register("provide-client-params.s3.CompleteMultipartUpload", record)
    return received


def stored(s3_server: S3Server, bucket: str) -> tuple[list[str], list[str]]:
    """The bucket's object keys and its open multipart uploads' keys."""
    client = s3_server.client()
    objects = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [item["Key"] for item in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return objects, uploads


def read_all(store: S3Store, key: str) -> bytes:
    return b"".join(store.read(key))


def test_it_cuts_irregular_chunks_into_equal_parts(
    s3_server: S3Server, s3_bucket: str, s3_store: S3Store, parts_received: list[list[int]]
) -> None:
    request_sizes = [[1, 3 * MiB], [7 * MiB], [11 * MiB + 17, 2], [PART], [123, 4 * MiB, 1], [9 * MiB + 5]]
    data = blob(sum(map(sum, request_sizes)))
    state = push(s3_store, "u1", split(data, request_sizes))

    key = s3_store.commit("u1", state, "sha256:x", len(data))

    [sizes] = parts_received
    assert sizes[:-1] == [PART] * (len(sizes) - 1)
    assert 0 < sizes[-1] <= PART
    assert sum(sizes) == len(data)
    assert read_all(s3_store, key) == data
    assert stored(s3_server, s3_bucket) == ([key], [])


def test_it_keeps_no_more_than_a_tail_between_requests(s3_store: S3Store) -> None:
    state = push(s3_store, "u1", [[blob(PART + 10)], [b"abc"]])

    assert state["tail"] == 13
    assert [part["PartNumber"] for part in state["parts"]] == [1]
    assert state["mpu"]


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, 2 * PART, 2 * PART + 1])
def test_it_stores_blobs_at_part_boundaries(
    s3_server: S3Server, s3_bucket: str, s3_store: S3Store, parts_received: list[list[int]], size: int
) -> None:
    data = blob(size)
    state = push(s3_store, "u1", [list(cut(data, [MiB] * 20))])

    key = s3_store.commit("u1", state, "sha256:x", size)

    assert read_all(s3_store, key) == data
    assert parts_received == (
        [[PART] * (size // PART) + ([size % PART] if size % PART else [])] if size >= PART else []
    )
    assert stored(s3_server, s3_bucket) == ([key], [])


def test_it_aborts_leaving_nothing(s3_server: S3Server, s3_bucket: str, s3_store: S3Store) -> None:
    state = push(s3_store, "u1", [[blob(PART + 1)], [b"more"]])
    assert stored(s3_server, s3_bucket) != ([], [])

    s3_store.abort("u1", state)
    s3_store.abort("u1", state)

    assert stored(s3_server, s3_bucket) == ([], [])


def test_it_aborts_a_multipart_upload_its_state_never_saw(
    s3_server: S3Server, s3_bucket: str, s3_store: S3Store
) -> None:
    state = s3_store.start_upload("u1")
    s3_store.write("u1", state, 0, [blob(PART)])  # the new state is lost

    s3_store.abort("u1", state)

    assert stored(s3_server, s3_bucket) == ([], [])


def test_it_resumes_from_the_saved_state_after_a_broken_write(s3_store: S3Store) -> None:
    data = blob(3 * PART + 100)
    state = s3_store.write("u1", s3_store.start_upload("u1"), 0, [data[:100]])

    def breaks_off() -> Iterator[bytes]:
        yield data[100 : 2 * PART]
        raise OSError("client went away")

    with pytest.raises(OSError):
        s3_store.write("u1", state, 100, breaks_off())
    state = s3_store.write("u1", state, 100, cut(data[100:], [3 * MiB] * 10))
    key = s3_store.commit("u1", state, "sha256:x", len(data))

    assert read_all(s3_store, key) == data


def test_it_ignores_what_an_unsaved_write_stored(s3_store: S3Store, parts_received: list[list[int]]) -> None:
    # A write whose new state was never saved cut a part and left a tail of its own;
    # the retry, from the saved state, sends the bytes cut differently.
    data = blob(2 * PART + 7)
    saved = s3_store.write("u1", s3_store.start_upload("u1"), 0, [data[:1000]])
    s3_store.write("u1", saved, 1000, [data[1000 : PART + 500]])

    state = s3_store.write("u1", saved, 1000, cut(data[1000:], [PART - 1, 5, 2 * MiB]))
    key = s3_store.commit("u1", state, "sha256:x", len(data))

    assert read_all(s3_store, key) == data
    assert parts_received == [[PART, PART, 7]]


def test_it_never_sends_a_part_of_another_size(s3_store: S3Store) -> None:
    with pytest.raises(AssertionError, match="exactly"):
        s3_store._upload_part("u1", "mpu", 1, bytearray(PART - 1), final=False)
    with pytest.raises(AssertionError, match="at most"):
        s3_store._upload_part("u1", "mpu", 2, bytearray(PART + 1), final=True)


def test_it_sends_checksums_only_when_required(s3_store: S3Store) -> None:
    headers: dict[str, list[str]] = {}

    def record(request: object, **kwargs: object) -> None:
        operation = kwargs["event_name"].rsplit(".", 1)[-1]
        headers[operation] = [name.lower() for name in request.headers]

    s3_store.client.meta.events.register("before-send.s3", record)
    data = blob(PART + 10)
    s3_store.commit("u1", push(s3_store, "u1", [[data]]), "sha256:x", len(data))

    assert {"PutObject", "UploadPart", "CompleteMultipartUpload"} <= headers.keys()
    sent = {name for names in headers.values() for name in names}
    assert not {name for name in sent if "checksum" in name or name == "content-md5"}


def claim(name: str) -> WriteClaim:
    return WriteClaim(name)


def test_it_commits_only_the_saved_bytes_of_a_small_blob(s3_store: S3Store) -> None:
    saved = s3_store.write("u1", s3_store.start_upload("u1"), 0, [b"saved"], claim("a"))
    s3_store.write("u1", saved, 5, [b" but never recorded"], claim("b"))

    key = s3_store.commit("u1", saved, "sha256:x", 5, claim("c"))

    assert read_all(s3_store, key) == b"saved"


def test_a_stale_writer_cannot_reach_the_saved_tail_or_the_blob(
    s3_server: S3Server, s3_bucket: str, s3_store: S3Store
) -> None:
    # A (stale) and B both start from the same saved state; B's state is saved, A's write lands
    # late, B commits. Nothing A wrote is named by B's state, and the blob has B's bytes.
    saved = s3_store.write("u1", s3_store.start_upload("u1"), 0, [b"first "], claim("0"))
    newer = s3_store.write("u1", saved, 6, [b"second"], claim("b"))
    s3_store.write("u1", saved, 6, [b"XXXXXX"], claim("a"))
    key = s3_store.commit("u1", newer, "sha256:x", 12, claim("b"))
    s3_store.rollback("u1", 6, claim("a"))  # what the stale request does when its save fails

    assert read_all(s3_store, key) == b"first second"
    assert stored(s3_server, s3_bucket) == ([key], [])
    with pytest.raises(StorageError):  # and later still, it finds nothing to build on
        s3_store.write("u1", saved, 6, [b"XXXXXX"], claim("a"))


def test_two_commits_never_write_over_each_other(s3_store: S3Store) -> None:
    first = s3_store.write("u1", s3_store.start_upload("u1"), 0, [b"one"], claim("a"))
    second = s3_store.write("u1", first, 3, [b"two"], claim("b"))

    stale = s3_store.commit("u1", first, "sha256:x", 3, claim("a"))
    fresh = s3_store.commit("u1", second, "sha256:y", 6, claim("b"))

    assert (read_all(s3_store, stale), read_all(s3_store, fresh)) == (b"one", b"onetwo")


def test_it_measures_what_an_upload_stores(s3_store: S3Store) -> None:
    state = s3_store.write("u1", s3_store.start_upload("u1"), 0, [blob(PART + 10)], claim("a"))
    s3_store.write("u1", state, PART + 10, [b"never saved"], claim("b"))

    assert s3_store.stored_size("u1", state) == PART + 10 + 10 + len(b"never saved")


@pytest.fixture
def operations(s3_store: S3Store) -> list[str]:
    """The S3 operations the store sends, in order."""
    sent: list[str] = []

    def record(request: object, **kwargs: object) -> None:
        sent.append(kwargs["event_name"].rsplit(".", 1)[-1])

    s3_store.client.meta.events.register("before-send.s3", record)
    return sent


def test_a_small_blob_costs_a_put_a_copy_and_a_delete(
    s3_server: S3Server, s3_bucket: str, s3_store: S3Store, operations: list[str]
) -> None:
    state = s3_store.write("u1", s3_store.start_upload("u1"), 0, [b"a small ", b"blob"])
    key = s3_store.commit("u1", state, "sha256:x", 12)

    assert operations == ["PutObject", "CopyObject", "DeleteObject"]
    assert read_all(s3_store, key) == b"a small blob"
    assert stored(s3_server, s3_bucket) == ([key], [])


def test_a_small_blob_in_two_writes_reads_its_bytes_back_once(
    s3_store: S3Store, operations: list[str]
) -> None:
    state = s3_store.write("u1", s3_store.start_upload("u1"), 0, [b"first "], claim("a"))
    state = s3_store.write("u1", state, 6, [b"second"], claim("b"))
    key = s3_store.commit("u1", state, "sha256:x", 12, claim("c"))

    assert operations == ["PutObject", "GetObject", "PutObject", "CopyObject", "DeleteObject", "DeleteObject"]
    assert read_all(s3_store, key) == b"first second"


def test_aborting_a_small_upload_deletes_its_bytes(
    s3_server: S3Server, s3_bucket: str, s3_store: S3Store
) -> None:
    state = s3_store.write("u1", s3_store.start_upload("u1"), 0, [b"never committed"])

    s3_store.abort("u1", state)

    assert stored(s3_server, s3_bucket) == ([], [])


def test_the_sweep_abort_leaves_a_committed_small_blob(s3_store: S3Store) -> None:
    state = s3_store.write("u1", s3_store.start_upload("u1"), 0, [b"committed"])
    key = s3_store.commit("u1", state, "sha256:x", 9)

    s3_store.abort("u1", {})  # gc's sweep knows only the upload id

    assert read_all(s3_store, key) == b"committed"


def test_it_refuses_an_offset_its_state_does_not_hold(s3_store: S3Store) -> None:
    state = push(s3_store, "u1", [[b"abc"]])

    with pytest.raises(StorageError, match="not the 2 bytes expected"):
        s3_store.write("u1", state, 2, [b"d"])


def test_it_refuses_blobs_beyond_the_part_limit(monkeypatch: pytest.MonkeyPatch, s3_store: S3Store) -> None:
    monkeypatch.setattr(s3_module, "MAX_PARTS", 2)

    with pytest.raises(StorageError, match="limited to 2 parts"):
        push(s3_store, "u1", [list(cut(blob(2 * PART + 1), [MiB] * 10))])


def test_it_redirects_to_a_presigned_url(s3_server: S3Server, s3_bucket: str) -> None:
    store = s3_server.store(s3_bucket, presign_expiry=123)
    data = blob(1000)
    key = store.commit("u1", push(store, "u1", [[data]]), "sha256:x", len(data))

    download = store.download(key, "sha256:x", 0, len(data))

    assert isinstance(download, Redirect)
    query = parse_qs(urlsplit(download.url).query)
    assert query["X-Amz-Expires"] == ["123"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert requests.get(download.url, timeout=10).content == data
    ranged = requests.get(download.url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert (ranged.status_code, ranged.content) == (206, data[10:20])


def test_it_redirects_to_the_public_host_unsigned(s3_server: S3Server, s3_bucket: str) -> None:
    store = s3_server.store(s3_bucket, public_url="https://blobs.example.com/", prefix="crow")

    download = store.download("crow/blobs/u1", "sha256:x", 0, 10)

    assert download == Redirect("https://blobs.example.com/crow/blobs/u1")


@pytest.mark.parametrize(
    ("start", "length"), [(0, 3 * MiB + 5), (1, 10), (MiB - 1, 2 * MiB), (3 * MiB + 4, 1)]
)
def test_it_streams_ranges_in_bounded_chunks(
    s3_server: S3Server, s3_bucket: str, start: int, length: int
) -> None:
    store = s3_server.store(s3_bucket, redirect=False)
    data = blob(3 * MiB + 5)
    key = store.commit("u1", push(store, "u1", [[data]]), "sha256:x", len(data))

    download = store.download(key, "sha256:x", start, length)

    assert isinstance(download, Stream)
    chunks = list(download.chunks)
    assert download.length == length
    assert b"".join(chunks) == data[start : start + length]
    assert max(map(len, chunks)) <= s3_module.STREAM_CHUNK


def test_it_streams_an_empty_range(s3_server: S3Server, s3_bucket: str) -> None:
    store = s3_server.store(s3_bucket, redirect=False)

    download = store.download("blobs/none", "sha256:x", 0, 0)

    assert download == Stream(download.chunks, 0)
    assert list(download.chunks) == []


def test_it_fails_to_stream_a_missing_blob_before_any_byte(s3_server: S3Server, s3_bucket: str) -> None:
    store = s3_server.store(s3_bucket, redirect=False)

    with pytest.raises(StorageError, match="NoSuchKey"):
        store.download("blobs/none", "sha256:x", 0, 10)


def test_it_reads_checks_and_deletes(s3_store: S3Store) -> None:
    data = blob(2 * MiB + 3)
    key = s3_store.commit("u1", push(s3_store, "u1", [[data]]), "sha256:x", len(data))

    assert [len(chunk) for chunk in s3_store.read(key, chunk_size=MiB)] == [MiB, MiB, 3]
    assert s3_store.exists(key)
    s3_store.delete(key)
    s3_store.delete(key)
    assert not s3_store.exists(key)


def test_it_raises_storage_error_quickly_when_unreachable() -> None:
    store = S3Store(
        bucket="nowhere",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id="x",
        secret_access_key="x",
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=1,
    )
    began = time.monotonic()

    with pytest.raises(StorageError, match="could not"):
        store.write("u1", store.start_upload("u1"), 0, [b"abc"])
    with pytest.raises(StorageError):
        store.exists("blobs/u1")

    assert time.monotonic() - began < 5


def test_it_is_the_store_the_settings_choose(s3_settings: object) -> None:
    store = blob_store()
    data = blob(PART + 1)
    key = store.commit("u1", push(store, "u1", [[data]]), "sha256:x", len(data))

    assert isinstance(store, S3Store)
    assert (store.part_size, store.redirect, store.presign_expiry) == (PART, True, 300)
    assert read_all(store, key) == data
