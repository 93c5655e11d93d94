"""A chunk whose body stalls keeps the bytes that arrived; the client resumes from the offset it hears.

The server raises the builtin ``TimeoutError`` from a request's input stream
when no byte arrived for its body timeout. Here a ``wsgi.input`` yields some
bytes and then raises it, through Django's test client. On a PATCH or a PUT
into a known session, what arrived is stored, hashed and saved (408, with
``Location``, ``Range`` and ``Docker-Upload-UUID``); the client resumes and the
blob comes out whole. A monolithic POST keeps nothing, and a body cut off by a
client that went away (``ConnectionResetError``) commits nothing, as before.
"""

import hashlib
import io
from collections.abc import Callable

import pytest

from registry import hashing
from registry.models import Blob, Upload
from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"
DATA = bytes(range(256)) * 400  # 102,400 bytes
ARRIVED = 40_000  # bytes that arrive before the body stalls


class BreakingInput(io.RawIOBase):
    """A ``wsgi.input`` that gives ``data`` and then raises ``error`` instead of more bytes."""

    def __init__(self, data: bytes, error: type[OSError] = TimeoutError) -> None:
        self._data = io.BytesIO(data)
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        if not chunk:
            raise self._error("no byte arrived")
        return chunk

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def broken(method: str, client, url: str, arrived: bytes, declared: int | None, **kwargs):
    """``method`` on ``url`` with a body of ``declared`` bytes (None: chunked) of which ``arrived`` come."""
    error = kwargs.pop("error", TimeoutError)
    extra = {"wsgi.input": BreakingInput(arrived, error), "CONTENT_TYPE": oci.OCTET_STREAM}
    if declared is None:
        extra["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        extra["CONTENT_LENGTH"] = str(declared)
    return client.generic(method, url, **extra, **kwargs)


def assert_stalled_at(response, url: str, offset: int) -> None:
    oci.assert_error(response, 408, "BLOB_UPLOAD_INVALID")
    assert f"keeps the {offset} bytes" in oci.document(response)["errors"][0]["message"]
    upload_id = oci.path_of(url).rsplit("/", 1)[1]
    assert response["Location"] == oci.path_of(url)
    assert response["Docker-Upload-UUID"] == upload_id
    assert response["Range"] == f"0-{offset - 1}"


def range_of(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 204
    return response["Range"]


def upload_of(url: str) -> Upload:
    return Upload.objects.get(id=url.rstrip("/").rsplit("/", 1)[1])


def pulled(client, digest: str) -> bytes:
    response = client.get(f"/v2/{NAME}/blobs/{digest}")
    assert response.status_code == 200
    return oci.content(response)


@pytest.fixture
def another_process(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Forget the hashers this process kept, as if the next request landed in another worker."""
    return lambda: monkeypatch.setattr(hashing, "RECENT", hashing.RecentHashers(1024))


@pytest.mark.all_backends
@pytest.mark.parametrize("moved", [False, True])
@pytest.mark.parametrize("streamed", [False, True])
def test_it_keeps_what_arrived_of_a_stalled_patch(client, another_process, moved, streamed) -> None:
    url = oci.start_upload(client, NAME)
    assert oci.patch_chunk(client, url, DATA[:1000], 0).status_code == 202
    declared = None if streamed else len(DATA) - 1000
    headers = {} if streamed else {"Content-Range": f"1000-{len(DATA) - 1}"}
    response = broken("PATCH", client, url, DATA[1000:ARRIVED], declared, headers=headers)
    assert_stalled_at(response, url, ARRIVED)
    assert range_of(client, url) == f"0-{ARRIVED - 1}"
    assert upload_of(url).claim is None  # the next request may write at once
    if moved:
        another_process()
    # The client resumes from the offset it heard; the digest comes out right.
    assert oci.patch_chunk(client, url, DATA[ARRIVED:], ARRIVED).status_code == 202
    digest = oci.sha256(DATA)
    assert client.put(oci.with_query(url, digest=digest), data=b"").status_code == 201
    assert pulled(client, digest) == DATA


@pytest.mark.all_backends
@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_it_keeps_what_arrived_of_a_stalled_put_and_commits_nothing(client, algorithm) -> None:
    digest = f"{algorithm}:{hashlib.new(algorithm, DATA).hexdigest()}"
    url = oci.start_upload(client, NAME)
    response = broken("PUT", client, oci.with_query(url, digest=digest), DATA[:ARRIVED], len(DATA))
    assert_stalled_at(response, url, ARRIVED)
    assert not Blob.objects.exists()
    assert client.head(f"/v2/{NAME}/blobs/{digest}").status_code == 404
    assert range_of(client, url) == f"0-{ARRIVED - 1}"
    # The last chunk with the PUT, from where the upload stands.
    resumed = client.put(
        oci.with_query(url, digest=digest),
        data=DATA[ARRIVED:],
        content_type=oci.OCTET_STREAM,
        headers={"Content-Range": f"{ARRIVED}-{len(DATA) - 1}"},
    )
    assert resumed.status_code == 201, oci.content(resumed)
    assert resumed["Docker-Content-Digest"] == digest
    assert pulled(client, digest) == DATA


@pytest.mark.all_backends
def test_it_keeps_whole_parts_and_the_tail_of_a_large_stalled_chunk(client) -> None:
    # Past one S3 part (5 MiB in tests): a part is uploaded and the rest waits as the tail.
    data = hashlib.sha256(b"seed").digest() * (6 * 1024 * 1024 // 32)
    arrived = 5 * 1024 * 1024 + 12_345
    url = oci.start_upload(client, NAME)
    response = broken(
        "PATCH", client, url, data[:arrived], len(data), headers={"Content-Range": f"0-{len(data) - 1}"}
    )
    assert_stalled_at(response, url, arrived)
    assert oci.patch_chunk(client, url, data[arrived:], arrived).status_code == 202
    digest = oci.sha256(data)
    assert client.put(oci.with_query(url, digest=digest), data=b"").status_code == 201
    assert pulled(client, digest) == data


@pytest.mark.all_backends
def test_a_stalled_patch_that_brought_nothing_keeps_the_upload_as_it_was(client) -> None:
    url = oci.start_upload(client, NAME)
    assert oci.patch_chunk(client, url, DATA[:1000], 0).status_code == 202
    response = broken("PATCH", client, url, b"", len(DATA) - 1000)
    assert_stalled_at(response, url, 1000)
    assert oci.patch_chunk(client, url, DATA[1000:], 1000).status_code == 202
    assert client.put(oci.with_query(url, digest=oci.sha256(DATA)), data=b"").status_code == 201


@pytest.mark.all_backends
def test_a_stalled_monolithic_post_leaves_no_session(client) -> None:
    url = oci.with_query(f"/v2/{NAME}/blobs/uploads/", digest=oci.sha256(DATA))
    response = broken("POST", client, url, DATA[:ARRIVED], len(DATA))
    oci.assert_error(response, 408)
    assert "Location" not in response
    assert not Upload.objects.exists()
    assert not Blob.objects.exists()


@pytest.mark.all_backends
def test_a_body_cut_off_by_the_client_commits_nothing_of_its_chunk(client) -> None:
    url = oci.start_upload(client, NAME)
    assert oci.patch_chunk(client, url, DATA[:1000], 0).status_code == 202
    response = broken("PATCH", client, url, DATA[1000:ARRIVED], len(DATA) - 1000, error=ConnectionResetError)
    oci.assert_error(response, 400, "SIZE_INVALID")
    assert range_of(client, url) == "0-999"
    assert upload_of(url).claim is None


def test_a_stalled_manifest_is_refused_whole(client) -> None:
    pushed = oci.image("stalled")
    for blob in pushed.blobs:
        oci.push_blob(client, NAME, blob)
    data = pushed.manifest.data
    response = client.generic(
        "PUT",
        f"/v2/{NAME}/manifests/v1",
        **{
            "wsgi.input": BreakingInput(data[: len(data) // 2]),
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": pushed.manifest.media_type,
        },
    )
    oci.assert_error(response, 408, "SIZE_INVALID")
    assert oci.get_manifest(client, NAME, "v1").status_code == 404
