"""sha512 against a real server, on both stores, over raw HTTP.

No client at hand pushes sha512 content: skopeo 1.9 uploads every blob under its
SHA-256 whatever the source layout names it (tried with a layout of sha512 blobs:
with ``--preserve-digests`` it stops itself, "blob with digest sha512:... saved
with digest sha256:...", and without it fails reading the config), and oras-py
hashes with SHA-256 only. So the pushes here are the spec's requests
made with ``requests``: a single POST, chunked PATCHes cut across S3 parts and a
streamed PATCH, then a manifest of sha512 blobs under its sha512 digest, all
pulled back byte for byte (S3 downloads follow the redirect to the store).
"""

import hashlib
import json
import os
from urllib.parse import urljoin

import pytest
import requests

from tests.server import Server

MiB = 1024 * 1024
TIMEOUT = 60
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(params=["filesystem", "s3"])
def server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "filesystem":
        return {}
    return request.getfixturevalue("s3_server").environment(request.getfixturevalue("s3_bucket"))


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def push_chunked(http: requests.Session, url: str, data: bytes, cuts: list[int]) -> requests.Response:
    response = http.post(f"{url}/v2/team/app/blobs/uploads/", timeout=TIMEOUT)
    assert response.status_code == 202, response.text
    bounds = [0, *cuts, len(data)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{end - 1}"}
        response = http.patch(
            urljoin(url, response.headers["Location"]), data=data[start:end], headers=headers, timeout=TIMEOUT
        )
        assert response.status_code == 202, response.text
    return http.put(
        urljoin(url, response.headers["Location"]), params={"digest": sha512(data)}, timeout=TIMEOUT
    )


def pulled(http: requests.Session, url: str, digest: str) -> bytes:
    response = http.get(f"{url}/v2/team/app/blobs/{digest}", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.content


def test_it_takes_and_serves_sha512_blobs_and_manifests(registry_server: Server) -> None:
    http, url = registry_server.session("team/app"), registry_server.url
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    big, small = os.urandom(11 * MiB + 5), os.urandom(70_000)

    single = http.post(
        f"{url}/v2/team/app/blobs/uploads/", params={"digest": sha512(config)}, data=config, timeout=TIMEOUT
    )
    assert (single.status_code, single.headers["Docker-Content-Digest"]) == (201, sha512(config))
    chunked = push_chunked(http, url, big, [3 * MiB + 1, 9 * MiB])
    assert (chunked.status_code, chunked.headers["Docker-Content-Digest"]) == (201, sha512(big))
    started = http.post(f"{url}/v2/team/app/blobs/uploads/", timeout=TIMEOUT)
    streamed = http.patch(urljoin(url, started.headers["Location"]), data=iter([small[:1000], small[1000:]]))
    assert streamed.status_code == 202, streamed.text
    done = http.put(
        urljoin(url, streamed.headers["Location"]), params={"digest": sha512(small)}, timeout=TIMEOUT
    )
    assert done.status_code == 201, done.text
    refused = http.post(
        f"{url}/v2/team/app/blobs/uploads/", params={"digest": sha512(b"other")}, data=small, timeout=TIMEOUT
    )
    assert (refused.status_code, refused.json()["errors"][0]["code"]) == (400, "DIGEST_INVALID")

    for data in (config, big, small):
        assert pulled(http, url, sha512(data)) == data
    ranged = http.get(
        f"{url}/v2/team/app/blobs/{sha512(big)}", headers={"Range": "bytes=7-16"}, timeout=TIMEOUT
    )
    assert ranged.content == big[7:17]

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha512(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha512(d), "size": len(d)}
                for d in (big, small)
            ],
        }
    ).encode()
    put = http.put(
        f"{url}/v2/team/app/manifests/{sha512(manifest)}",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=TIMEOUT,
    )
    assert (put.status_code, put.headers["Docker-Content-Digest"]) == (201, sha512(manifest))
    got = http.get(
        f"{url}/v2/team/app/manifests/{sha512(manifest)}", headers={"Accept": OCI_MANIFEST}, timeout=TIMEOUT
    )
    assert (got.status_code, got.content) == (200, manifest)
