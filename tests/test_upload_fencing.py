"""Upload writes under contention, in process: a request that lost its claim reaches nothing, a cancel
frees storage at once, and a failed write or monolithic upload leaves nothing behind.

Two "requests" run deterministically: the stalled one is ``uploads.append`` in a thread with a body
that stops at an Event, the other goes through the test client meanwhile.
"""

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from registry import uploads
from registry.bodies import IncompleteBody
from registry.errors import RegistryError
from registry.models import Upload
from tests import oci

pytestmark = pytest.mark.django_db(transaction=True)  # the stalled request runs in another thread

NAME = "team/app"
MiB = 1024 * 1024


class StalledBody:
    """A request body that sends ``first``, stalls until ``resume`` is set, then sends ``then``; it
    breaks off there if it declared more."""

    chunked = False
    empty = False

    def __init__(self, first: bytes, then: bytes, declared: int | None = None) -> None:
        self.first, self.then = first, then
        self.length = declared if declared is not None else len(first) + len(then)
        self.received = 0
        self.stalled, self.resume = threading.Event(), threading.Event()

    def chunks(self) -> Iterator[bytes]:
        for start in range(0, len(self.first), MiB):
            self.received += len(self.first[start : start + MiB])
            yield self.first[start : start + MiB]
        self.stalled.set()
        assert self.resume.wait(60)
        self.received += len(self.then)
        yield self.then
        if self.received < self.length:
            raise IncompleteBody(f"body ended after {self.received} of {self.length} declared bytes")


class Request(threading.Thread):
    """``call`` in a thread of its own, as another server thread would run it; ``error`` is what it raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.call()
        except BaseException as exc:  # noqa: BLE001 - the test asserts what it was
            self.error = exc
        finally:
            connection.close()


@pytest.fixture
def stored(request: pytest.FixtureRequest, storage_backend: str, blob_root: Path) -> Callable[[], list[str]]:
    """What the store holds: files under the blob root, or the bucket's objects and multipart uploads."""
    if storage_backend == "filesystem":
        return lambda: sorted(
            str(path.relative_to(blob_root)) for path in blob_root.rglob("*") if path.is_file()
        )
    s3, bucket = request.getfixturevalue("s3_server").client(), request.getfixturevalue("s3_bucket")

    def listing() -> list[str]:
        objects = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        return sorted(
            objects + [f"mpu:{u['Key']}" for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
        )

    return listing


def upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


def assert_taken_over(error: BaseException | None) -> None:
    assert isinstance(error, RegistryError), error
    assert (error.status, error.error.code) == (416, "BLOB_UPLOAD_INVALID")


@pytest.mark.all_backends
def test_a_writer_that_lost_its_claim_cannot_reach_the_blob(client, settings, storage_backend: str) -> None:
    # Issue 18, item 1: A declares 8 MiB, sends 2 MiB and stalls past its lease; B takes the upload
    # over, sends 8 MiB and finishes it; then A sends 1 MiB of X. The blob must be B's bytes.
    settings.CROW_UPLOAD_LEASE = 1
    url, data = oci.start_upload(client, NAME), os.urandom(8 * MiB)
    body = StalledBody(b"A" * 2 * MiB, b"X" * MiB, declared=8 * MiB)
    a = Request(lambda: uploads.append(NAME, upload_id(url), body.chunks(), body.length, 0))
    assert body.stalled.wait(60)
    time.sleep(1.5)  # A's claim expires

    patched = oci.patch_chunk(client, url, data, 0)
    assert patched.status_code == 202, patched.content
    finished = client.put(
        oci.with_query(url, digest=oci.sha256(data)), data=b"", content_type=oci.OCTET_STREAM
    )
    assert finished.status_code == 201, finished.content
    body.resume.set()
    a.join(60)

    assert_taken_over(a.error)
    assert oci.content(client.get(f"/v2/{NAME}/blobs/{oci.sha256(data)}")) == data


@pytest.mark.all_backends
def test_a_cancel_frees_storage_at_once_while_a_request_writes(client, storage_backend: str, stored) -> None:
    url = oci.start_upload(client, NAME)
    body = StalledBody(os.urandom(6 * MiB), b"X" * MiB)  # on S3: a part uploaded before the stall
    a = Request(lambda: uploads.append(NAME, upload_id(url), body.chunks(), body.length, 0))
    assert body.stalled.wait(60)
    assert stored() != []

    assert client.delete(url).status_code == 204
    assert stored() == []
    body.resume.set()
    a.join(60)

    assert_taken_over(a.error)
    assert stored() == []
    oci.assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.all_backends
def test_a_monolithic_upload_that_breaks_off_leaves_nothing(client, storage_backend: str, stored) -> None:
    data = os.urandom(MiB)
    response = client.post(
        oci.with_query(f"/v2/{NAME}/blobs/uploads/", digest=oci.sha256(data)),
        data=data[: MiB // 2],
        content_type=oci.OCTET_STREAM,
        CONTENT_LENGTH=str(MiB),
    )
    oci.assert_error(response, 400, "SIZE_INVALID")
    assert not Upload.objects.exists()
    assert stored() == []


@pytest.mark.all_backends
def test_a_monolithic_upload_with_the_wrong_digest_leaves_nothing(
    client, storage_backend: str, stored
) -> None:
    response = client.post(
        oci.with_query(f"/v2/{NAME}/blobs/uploads/", digest=oci.sha256(b"other")),
        data=os.urandom(6 * MiB),
        content_type=oci.OCTET_STREAM,
    )
    oci.assert_error(response, 400, "DIGEST_INVALID")
    assert not Upload.objects.exists()
    assert stored() == []


def test_a_chunk_that_breaks_off_is_cut_back_to_the_saved_offset(client, blob_root: Path) -> None:
    url = oci.start_upload(client, NAME)
    assert oci.patch_chunk(client, url, b"s" * 1000, 0).status_code == 202
    response = client.generic(
        "PATCH", url, data=b"p" * MiB, content_type=oci.OCTET_STREAM, CONTENT_LENGTH=str(4 * MiB)
    )
    oci.assert_error(response, 400, "SIZE_INVALID")

    [data_file] = (blob_root / "uploads" / upload_id(url)).iterdir()
    assert data_file.stat().st_size == 1000


def test_a_busy_upload_says_when_to_retry(client, settings) -> None:
    url = oci.start_upload(client, NAME)
    body = StalledBody(b"A" * MiB, b"")
    a = Request(lambda: uploads.append(NAME, upload_id(url), body.chunks(), body.length, 0))
    assert body.stalled.wait(60)

    response = oci.patch_chunk(client, url, b"B", 0)
    oci.assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert 1 <= int(response["Retry-After"]) <= settings.CROW_UPLOAD_LEASE
    assert (response["Range"], response["Docker-Upload-UUID"]) == ("0-0", upload_id(url))
    assert response["Location"].endswith(upload_id(url))
    body.resume.set()
    a.join(60)
    assert a.error is None
