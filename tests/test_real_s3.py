"""A real server storing blobs in a real S3 endpoint (moto's server, the stand-in for R2).

What R2 makes special is checked where a client sees it: chunks of any size
pushed over HTTP become one blob, and downloads are redirects to the store
(presigned URLs), which skopeo and requests follow; with redirects off, the
server streams the bytes itself, ranges included.
"""

import os
from collections.abc import Iterator
from itertools import pairwise
from urllib.parse import urljoin

import pytest

from tests import ocilayout
from tests.s3server import S3Server
from tests.server import Server

MiB = 1024 * 1024
TIMEOUT = 60


@pytest.fixture
def server_env(request: pytest.FixtureRequest, s3_server: S3Server, s3_bucket: str) -> dict[str, str]:
    """The server stores its blobs in the test's bucket; a test may add variables as its param."""
    return {**s3_server.environment(s3_bucket), **getattr(request, "param", {})}


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_it_assembles_chunks_of_any_size_into_one_blob_and_redirects_to_it(
    registry_server: Server, s3_server: S3Server
) -> None:
    # Three PATCHes cut across the 5 MiB parts, the middle one streamed without Content-Length.
    http = registry_server.session("team/app")
    data = os.urandom(12 * MiB + 777)
    bounds = [0, 3 * MiB + 1, 9 * MiB + 5, len(data)]
    response = http.post(f"{registry_server.url}/v2/team/app/blobs/uploads/", timeout=TIMEOUT)
    assert response.status_code == 202, response.text
    for index, (start, end) in enumerate(pairwise(bounds)):
        chunk = data[start:end]
        headers = {"Content-Type": "application/octet-stream"}
        if index != 1:
            headers["Content-Range"] = f"{start}-{end - 1}"
        response = http.patch(
            urljoin(registry_server.url, response.headers["Location"]),
            data=pieces(chunk, 300_001) if index == 1 else chunk,
            headers=headers,
            timeout=TIMEOUT,
        )
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{end - 1}"

    digest = ocilayout.sha256(data)
    put = http.put(
        urljoin(registry_server.url, response.headers["Location"]), params={"digest": digest}, timeout=TIMEOUT
    )
    assert put.status_code == 201, put.text

    pulled = http.get(f"{registry_server.url}/v2/team/app/blobs/{digest}", timeout=TIMEOUT)
    assert pulled.status_code == 200
    assert pulled.content == data
    (redirect,) = pulled.history
    assert redirect.status_code in (302, 307)
    assert redirect.headers["Location"].startswith(s3_server.endpoint_url)
    # The presigned URL expires: the redirect to it must not be cached for the blob's year.
    assert "Cache-Control" not in redirect.headers


@pytest.mark.parametrize("server_env", [{"CROW_S3_REDIRECT": "0"}], indirect=True, ids=["proxied"])
def test_it_streams_a_range_from_s3_when_redirects_are_off(registry_server: Server) -> None:
    http = registry_server.session("team/app")
    data = os.urandom(100_000)
    digest = ocilayout.sha256(data)
    response = http.post(
        f"{registry_server.url}/v2/team/app/blobs/uploads/",
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text

    ranged = http.get(
        f"{registry_server.url}/v2/team/app/blobs/{digest}",
        headers={"Range": "bytes=10-19"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert ranged.status_code == 206
    assert ranged.content == data[10:20]
    assert ranged.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
