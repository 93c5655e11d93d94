"""Upload sessions under hostile conditions: the stored offset is the truth and nothing half-done is kept."""

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from registry import hashing
from registry.models import Blob, Upload
from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"
DATA = bytes(range(256)) * 400  # 102,400 bytes


def status(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 204
    return response["Range"]


def upload_of(url: str) -> Upload:
    return Upload.objects.get(id=url.rstrip("/").rsplit("/", 1)[1])


def finish(client, url: str, data: bytes = b"") -> object:
    return client.put(oci.with_query(url, digest=oci.sha256(DATA)), data=data, content_type=oci.OCTET_STREAM)


@pytest.mark.all_backends
def test_it_appends_a_streamed_patch_without_content_range(client) -> None:
    url = oci.start_upload(client, NAME)
    first = client.generic("PATCH", url, data=DATA[:1000], content_type=oci.OCTET_STREAM)
    assert (first.status_code, first["Range"]) == (202, "0-999")
    second = client.generic("PATCH", first["Location"], data=DATA[1000:], content_type=oci.OCTET_STREAM)
    assert second["Range"] == f"0-{len(DATA) - 1}"
    assert finish(client, second["Location"]).status_code == 201


@pytest.mark.all_backends
def test_it_refuses_a_content_range_that_disagrees_with_the_body(client) -> None:
    url = oci.start_upload(client, NAME)
    response = client.generic(
        "PATCH", url, data=DATA[:100], content_type=oci.OCTET_STREAM, headers={"Content-Range": "0-199"}
    )
    oci.assert_error(response, 400, "SIZE_INVALID")
    assert status(client, url) == "0-0"


@pytest.mark.all_backends
def test_it_commits_nothing_of_a_body_that_breaks_off(client) -> None:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, DATA[:1000], 0)
    # The client declares more than it sends, then goes away.
    response = client.generic(
        "PATCH", url, data=DATA[1000:2000], content_type=oci.OCTET_STREAM, CONTENT_LENGTH="50000"
    )
    oci.assert_error(response, 400, "SIZE_INVALID")
    assert status(client, url) == "0-999"
    assert upload_of(url).claim is None
    # The client resumes from the offset the registry reports; the digest comes out right.
    assert oci.patch_chunk(client, url, DATA[1000:], 1000).status_code == 202
    assert finish(client, url).status_code == 201
    assert oci.content(client.get(f"/v2/{NAME}/blobs/{oci.sha256(DATA)}")) == DATA


@pytest.mark.all_backends
def test_it_refuses_a_chunk_while_another_request_writes(client) -> None:
    url = oci.start_upload(client, NAME)
    Upload.objects.update(claim=uuid.uuid4(), claimed_until=timezone.now() + timedelta(minutes=5))
    response = oci.patch_chunk(client, url, DATA, 0)
    oci.assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response["Range"] == "0-0"
    assert upload_of(url).offset == 0


@pytest.mark.all_backends
def test_it_takes_over_the_claim_of_a_request_that_died(client) -> None:
    url = oci.start_upload(client, NAME)
    Upload.objects.update(claim=uuid.uuid4(), claimed_until=timezone.now() - timedelta(seconds=1))
    assert oci.patch_chunk(client, url, DATA, 0).status_code == 202
    assert finish(client, url).status_code == 201


@pytest.mark.all_backends
def test_it_keeps_the_upload_when_the_digest_is_missing(client) -> None:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, DATA, 0)
    oci.assert_error(client.put(url, data=b"", content_type=oci.OCTET_STREAM), 400, "DIGEST_INVALID")
    assert status(client, url) == f"0-{len(DATA) - 1}"


def test_it_forgets_an_upload_whose_digest_does_not_match(client, blob_root: Path) -> None:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, DATA, 0)
    wrong = oci.sha256(b"something else")
    response = client.put(oci.with_query(url, digest=wrong), data=b"", content_type=oci.OCTET_STREAM)
    oci.assert_error(response, 400, "DIGEST_INVALID")
    oci.assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert not Blob.objects.exists()
    assert [path for path in blob_root.rglob("*") if path.is_file()] == []


@pytest.mark.all_backends
def test_it_refuses_a_sha512_digest_that_does_not_match(client) -> None:
    digest = "sha512:" + "a" * 128
    response = client.post(
        f"/v2/{NAME}/blobs/uploads/?digest={digest}", data=DATA, content_type=oci.OCTET_STREAM
    )
    oci.assert_error(response, 400, "DIGEST_INVALID")


def test_it_stores_the_same_bytes_once(client, blob_root: Path) -> None:
    blob = oci.Blob(DATA)
    first, second = oci.start_upload(client, NAME), oci.start_upload(client, "other/app")
    oci.patch_chunk(client, first, DATA, 0)
    oci.patch_chunk(client, second, DATA, 0)
    assert (
        client.put(
            oci.with_query(first, digest=blob.digest), data=b"", content_type=oci.OCTET_STREAM
        ).status_code
        == 201
    )
    assert (
        client.put(
            oci.with_query(second, digest=blob.digest), data=b"", content_type=oci.OCTET_STREAM
        ).status_code
        == 201
    )
    assert Blob.objects.count() == 1
    assert [path.read_bytes() for path in blob_root.rglob("*") if path.is_file()] == [DATA]


@pytest.mark.all_backends
def test_it_keeps_bytes_another_repository_uses_when_a_blob_is_deleted(client, blob_root: Path) -> None:
    blob = oci.Blob(DATA)
    oci.push_blob(client, NAME, blob)
    oci.push_blob(client, "other/app", blob)
    assert client.delete(f"/v2/{NAME}/blobs/{blob.digest}").status_code == 202
    assert oci.content(client.get(f"/v2/other/app/blobs/{blob.digest}")) == DATA


def test_it_removes_the_bytes_of_a_cancelled_upload(client, blob_root: Path) -> None:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, DATA, 0)
    assert client.delete(url).status_code == 204
    assert [path for path in blob_root.rglob("*") if path.is_file()] == []
    oci.assert_error(oci.patch_chunk(client, url, DATA, 0), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.all_backends
def test_it_does_not_continue_an_upload_from_another_repository(client) -> None:
    url = oci.start_upload(client, NAME)
    stolen = url.replace(f"/v2/{NAME}/", "/v2/other/app/")
    oci.assert_error(oci.patch_chunk(client, stolen, DATA, 0), 404, "BLOB_UPLOAD_UNKNOWN")


def test_it_answers_503_when_storage_fails(client, settings, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    settings.CROW_BLOB_ROOT = blocker
    response = client.post(f"/v2/{NAME}/blobs/uploads/")
    oci.assert_error(response, 503, "UNKNOWN")
    assert response["Retry-After"]
    assert not Upload.objects.exists()


@pytest.mark.all_backends
def test_it_advertises_the_chunk_size_the_store_prefers(client, storage_backend: str) -> None:
    response = client.post(f"/v2/{NAME}/blobs/uploads/")
    assert response["OCI-Chunk-Min-Length"] == (
        "0" if storage_backend == "filesystem" else str(5 * 1024 * 1024)
    )


def test_it_answers_503_and_keeps_the_offset_when_the_bucket_is_unreachable(client, s3_settings) -> None:
    url = oci.start_upload(client, NAME)
    s3_settings.CROW_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    chunk = b"x" * (6 * 1024 * 1024)  # more than a part: the store must be written
    response = oci.patch_chunk(client, url, chunk, 0)
    oci.assert_error(response, 503, "UNKNOWN")
    assert response["Retry-After"]
    assert upload_of(url).offset == 0
    assert not Blob.objects.exists()


def test_it_leaves_nothing_in_the_bucket_when_the_digest_does_not_match(
    client, s3_settings, s3_server, s3_bucket
) -> None:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, b"y" * (6 * 1024 * 1024), 0)  # a part and a tail object
    wrong = oci.sha256(b"something else")
    response = client.put(oci.with_query(url, digest=wrong), data=b"", content_type=oci.OCTET_STREAM)
    oci.assert_error(response, 400, "DIGEST_INVALID")
    s3 = s3_server.client()
    assert not s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    assert not s3.list_objects_v2(Bucket=s3_bucket).get("Contents")
    assert not Blob.objects.exists()


@pytest.fixture
def another_process(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Forget the hashers this process kept, as if the next request landed in another worker."""
    return lambda: monkeypatch.setattr(hashing, "RECENT", hashing.RecentHashers(1024))


# --- The digest: read back once at the end, or hashed as it arrives when one request brings it all ---


@pytest.mark.all_backends
@pytest.mark.parametrize("chunks", [[], [DATA], [DATA[:1000], DATA[1000:50_000], DATA[50_000:]]])
def test_it_verifies_the_digest_of_patched_chunks(client, chunks: list[bytes]) -> None:
    url, offset = oci.start_upload(client, NAME), 0
    for chunk in chunks:
        assert oci.patch_chunk(client, url, chunk, offset).status_code == 202
        offset += len(chunk)
    data = b"".join(chunks)
    wrong = client.put(
        oci.with_query(url, digest=oci.sha256(data + b"!")), data=b"", content_type=oci.OCTET_STREAM
    )
    oci.assert_error(wrong, 400, "DIGEST_INVALID")
    assert oci.document(wrong)["errors"][0]["detail"]["computed"] == oci.sha256(data)


@pytest.mark.all_backends
@pytest.mark.parametrize("moved", [False, True])
@pytest.mark.parametrize("last_chunk", [b"", DATA[50_000:]])
def test_it_verifies_a_put_that_brings_the_last_chunk(
    client, another_process, last_chunk: bytes, moved
) -> None:
    data = DATA[:50_000] + last_chunk
    url = oci.start_upload(client, NAME)
    assert oci.patch_chunk(client, url, DATA[:50_000], 0).status_code == 202
    if moved:
        another_process()
    response = client.put(
        oci.with_query(url, digest=oci.sha256(data)), data=last_chunk, content_type=oci.OCTET_STREAM
    )
    assert response.status_code == 201
    assert oci.content(client.get(f"/v2/{NAME}/blobs/{oci.sha256(data)}")) == data


@pytest.mark.all_backends
@pytest.mark.parametrize("data", [b"", DATA])
def test_it_verifies_a_monolithic_put(client, data: bytes) -> None:
    url = oci.start_upload(client, NAME)
    wrong = client.put(
        oci.with_query(url, digest=oci.sha256(data + b"!")), data=data, content_type=oci.OCTET_STREAM
    )
    oci.assert_error(wrong, 400, "DIGEST_INVALID")
    assert oci.document(wrong)["errors"][0]["detail"]["computed"] == oci.sha256(data)
    url = oci.start_upload(client, NAME)
    right = client.put(oci.with_query(url, digest=oci.sha256(data)), data=data, content_type=oci.OCTET_STREAM)
    assert right.status_code == 201


@pytest.mark.parametrize("moved_after", [None, 1, 2, 3])
@pytest.mark.parametrize("wrong", [False, True])
def test_it_verifies_chunks_whichever_process_took_them(client, another_process, moved_after, wrong) -> None:
    url, offset = oci.start_upload(client, NAME), 0
    for number, chunk in enumerate((DATA[:1000], DATA[1000:50_000], DATA[50_000:]), start=1):
        assert oci.patch_chunk(client, url, chunk, offset).status_code == 202
        offset += len(chunk)
        if number == moved_after:
            another_process()
    digest = oci.sha256(DATA + b"!") if wrong else oci.sha256(DATA)
    response = client.put(oci.with_query(url, digest=digest), data=b"", content_type=oci.OCTET_STREAM)
    if wrong:
        oci.assert_error(response, 400, "DIGEST_INVALID")
        assert oci.document(response)["errors"][0]["detail"]["computed"] == oci.sha256(DATA)
    else:
        assert response.status_code == 201
        assert oci.content(client.get(f"/v2/{NAME}/blobs/{digest}")) == DATA


def test_a_finished_patch_leaves_its_digest_for_any_process(client, another_process) -> None:
    url = oci.start_upload(client, NAME)
    assert oci.patch_chunk(client, url, DATA, 0).status_code == 202
    assert bytes(upload_of(url).hash_state) == f"{oci.sha256(DATA)}".encode()
    another_process()
    response = client.put(
        oci.with_query(url, digest=oci.sha256(DATA)), data=b"", content_type=oci.OCTET_STREAM
    )
    assert response.status_code == 201


def test_a_chunk_that_breaks_off_leaves_the_saved_digest(client, another_process) -> None:
    url = oci.start_upload(client, NAME)
    assert oci.patch_chunk(client, url, DATA[:1000], 0).status_code == 202
    response = client.generic(
        "PATCH", url, data=DATA[1000:2000], content_type=oci.OCTET_STREAM, CONTENT_LENGTH="5000"
    )
    oci.assert_error(response, 400, "SIZE_INVALID")
    assert bytes(upload_of(url).hash_state) == oci.sha256(DATA[:1000]).encode()
    assert oci.patch_chunk(client, url, DATA[1000:], 1000).status_code == 202
    response = client.put(
        oci.with_query(url, digest=oci.sha256(DATA)), data=b"", content_type=oci.OCTET_STREAM
    )
    assert response.status_code == 201
