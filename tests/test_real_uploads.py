"""Uploads over real HTTP, where the test client cannot go: chunked transfer encoding, a client
that vanishes mid-body, concurrent pushes of one blob and one tag, and ranged downloads.
"""

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from registry.events.models import CREATE_REPOSITORY, AuditEvent
from tests import ocilayout
from tests.server import Server

MiB = 1024 * 1024
TIMEOUT = 60
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def http(registry_server: Server) -> requests.Session:
    """Requests with a token for pull, push and delete in ``team/app``."""
    return registry_server.session("team/app")


def start_upload(http: requests.Session, server: Server) -> str:
    response = http.post(f"{server.url}/v2/team/app/blobs/uploads/", timeout=TIMEOUT)
    assert response.status_code == 202, response.text
    return urljoin(server.url, response.headers["Location"])


def push_blob(http: requests.Session, server: Server, data: bytes) -> requests.Response:
    """POST, one PATCH with the whole body, PUT ?digest=: the chunked push, in three requests."""
    patched = http.patch(
        start_upload(http, server),
        data=data,
        headers={**OCTET_STREAM, "Content-Range": f"0-{len(data) - 1}"},
        timeout=TIMEOUT,
    )
    assert patched.status_code == 202, patched.text
    return http.put(
        urljoin(server.url, patched.headers["Location"]),
        params={"digest": ocilayout.sha256(data)},
        timeout=TIMEOUT,
    )


def in_parallel(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at once: each waits at a barrier until all are ready to send."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_it_takes_a_streamed_patch_without_content_length(
    http: requests.Session, registry_server: Server
) -> None:
    data = os.urandom(3 * MiB + 12345)

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    # A generator body makes requests send "Transfer-Encoding: chunked" and no Content-Length.
    patched = http.patch(
        start_upload(http, registry_server), data=body(), headers=OCTET_STREAM, timeout=TIMEOUT
    )
    assert patched.status_code == 202, patched.text
    assert patched.request.headers.get("Transfer-Encoding") == "chunked"
    assert patched.headers["Range"] == f"0-{len(data) - 1}"

    digest = ocilayout.sha256(data)
    put = http.put(
        urljoin(registry_server.url, patched.headers["Location"]), params={"digest": digest}, timeout=TIMEOUT
    )
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == digest

    pulled = http.get(f"{registry_server.url}/v2/team/app/blobs/{digest}", timeout=TIMEOUT)
    assert pulled.status_code == 200
    assert pulled.content == data


def test_it_answers_a_range_of_a_blob(http: requests.Session, registry_server: Server) -> None:
    data = os.urandom(1000)
    digest = ocilayout.sha256(data)
    assert push_blob(http, registry_server, data).status_code == 201

    response = http.get(
        f"{registry_server.url}/v2/team/app/blobs/{digest}", headers={"Range": "bytes=10-19"}, timeout=TIMEOUT
    )
    assert response.status_code == 206
    assert response.content == data[10:20]
    assert response.headers["Content-Length"] == "10"
    assert response.headers["Content-Range"] == "bytes 10-19/1000"


def test_a_304_leaves_the_connection_ready_for_the_next_request(
    http: requests.Session, registry_server: Server
) -> None:
    # gunicorn must send the 304 without a body although it names the 200's length, or the
    # next answer on the same connection would be read as the rest of this one.
    data = os.urandom(1000)
    digest = ocilayout.sha256(data)
    assert push_blob(http, registry_server, data).status_code == 201
    host, port = urlsplit(registry_server.url).netloc.split(":")
    connection = HTTPConnection(host, int(port), timeout=TIMEOUT)
    path = f"/v2/team/app/blobs/{digest}"
    authorization = http.headers["Authorization"]
    try:
        connection.request(
            "GET", path, headers={"Authorization": authorization, "If-None-Match": f'"{digest}"'}
        )
        cached = connection.getresponse()
        assert (cached.status, cached.read()) == (304, b"")
        assert cached.headers["ETag"] == f'"{digest}"'
        connection.request("GET", path, headers={"Authorization": authorization})
        fresh = connection.getresponse()
        assert (fresh.status, fresh.read()) == (200, data)
        assert fresh.headers["Cache-Control"] == "max-age=31536000"
    finally:
        connection.close()


def _vanish_mid_body(
    http: requests.Session, server: Server, location: str, offset: int, sent: bytes, promised: int
) -> None:
    """Send a PATCH promising ``promised`` bytes, send only ``sent``, and hang up."""
    url = urlsplit(location)
    target = url.path + (f"?{url.query}" if url.query else "")
    head = (
        f"PATCH {target} HTTP/1.1\r\n"
        f"Host: {server.host}\r\n"
        f"Authorization: {http.headers['Authorization']}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Range: {offset}-{offset + promised - 1}\r\n"
        f"Content-Length: {promised}\r\n"
        "\r\n"
    )
    host, port = server.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(head.encode() + sent)
        # Hang up our side, then wait until the server has given up on the request: it
        # answers or closes, and only then is the upload's state worth asking about.
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass


@pytest.mark.parametrize("committed", [0, 256 * 1024], ids=["fresh", "after-a-chunk"])
def test_it_keeps_the_offset_when_a_client_vanishes_mid_upload(
    http: requests.Session, registry_server: Server, committed: int
) -> None:
    data = os.urandom(committed + 2 * MiB)
    location = start_upload(http, registry_server)
    if committed:
        first = http.patch(
            location,
            data=data[:committed],
            headers={**OCTET_STREAM, "Content-Range": f"0-{committed - 1}"},
            timeout=TIMEOUT,
        )
        assert first.status_code == 202, first.text
        location = urljoin(registry_server.url, first.headers["Location"])

    _vanish_mid_body(
        http, registry_server, location, committed, sent=data[committed : committed + MiB], promised=10 * MiB
    )

    status = http.get(location, timeout=TIMEOUT)
    assert status.status_code == 204
    assert status.headers["Range"] == f"0-{max(committed - 1, 0)}"

    rest = http.patch(
        location,
        data=data[committed:],
        headers={**OCTET_STREAM, "Content-Range": f"{committed}-{len(data) - 1}"},
        timeout=TIMEOUT,
    )
    assert rest.status_code == 202, rest.text
    digest = ocilayout.sha256(data)
    put = http.put(
        urljoin(registry_server.url, rest.headers["Location"]), params={"digest": digest}, timeout=TIMEOUT
    )
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == digest
    assert http.get(f"{registry_server.url}/v2/team/app/blobs/{digest}", timeout=TIMEOUT).content == data


def test_it_takes_the_same_blob_pushed_twice_at_once(registry_server: Server) -> None:
    sessions = [registry_server.session("team/app") for _ in range(2)]
    for _ in range(5):
        data = os.urandom(256 * 1024)
        responses = in_parallel(*(partial(push_blob, http, registry_server, data) for http in sessions))

        assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
        pulled = sessions[0].get(
            f"{registry_server.url}/v2/team/app/blobs/{ocilayout.sha256(data)}", timeout=TIMEOUT
        )
        assert pulled.content == data


def _manifest(config: bytes, layer: bytes, variant: str) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": ocilayout.OCI_MANIFEST,
        "config": {
            "mediaType": ocilayout.OCI_CONFIG,
            "digest": ocilayout.sha256(config),
            "size": len(config),
        },
        "layers": [{"mediaType": ocilayout.OCI_LAYER, "digest": ocilayout.sha256(layer), "size": len(layer)}],
        "annotations": {"variant": variant},
    }
    return json.dumps(document).encode()


def test_it_points_a_tag_pushed_twice_at_once_at_one_of_the_manifests(registry_server: Server) -> None:
    sessions = [registry_server.session("team/app") for _ in range(2)]
    config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(4096)
    for blob in (config, layer):
        assert push_blob(sessions[0], registry_server, blob).status_code == 201
    url = f"{registry_server.url}/v2/team/app/manifests/latest"

    def put(http: requests.Session, manifest: bytes) -> requests.Response:
        return http.put(url, data=manifest, headers={"Content-Type": ocilayout.OCI_MANIFEST}, timeout=TIMEOUT)

    for round_ in range(5):
        manifests = [_manifest(config, layer, f"{round_}-a"), _manifest(config, layer, f"{round_}-b")]
        responses = in_parallel(*(partial(put, http, m) for http, m in zip(sessions, manifests, strict=True)))

        assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
        tagged = sessions[0].get(url, headers={"Accept": ocilayout.OCI_MANIFEST}, timeout=TIMEOUT)
        assert tagged.status_code == 200
        assert tagged.content in manifests
        assert tagged.headers["Docker-Content-Digest"] == ocilayout.sha256(tagged.content)


def test_it_stores_the_same_manifest_pushed_at_once_under_several_tags(registry_server: Server) -> None:
    # On PostgreSQL the push is one statement: one whose snapshot began before another push of the
    # same manifest committed finds neither its own row nor the other's, writes nothing and runs again.
    sessions = [registry_server.session("team/app") for _ in range(6)]
    config, layer = b'{"architecture":"arm64","os":"linux"}', os.urandom(4096)
    for blob in (config, layer):
        assert push_blob(sessions[0], registry_server, blob).status_code == 201

    def put(http: requests.Session, manifest: bytes, tag: str) -> requests.Response:
        url = f"{registry_server.url}/v2/team/app/manifests/{tag}"
        return http.put(url, data=manifest, headers={"Content-Type": ocilayout.OCI_MANIFEST}, timeout=TIMEOUT)

    for round_ in range(8):
        manifest = _manifest(config, layer, f"same-{round_}")
        tags = [f"r{round_}-{index}" for index in range(len(sessions))]
        responses = in_parallel(
            *(partial(put, http, manifest, tag) for http, tag in zip(sessions, tags, strict=True))
        )

        assert [r.status_code for r in responses] == [201] * len(sessions), [r.text for r in responses]
        for tag in tags:
            got = sessions[0].get(
                f"{registry_server.url}/v2/team/app/manifests/{tag}",
                headers={"Accept": ocilayout.OCI_MANIFEST},
                timeout=TIMEOUT,
            )
            assert got.status_code == 200 and got.content == manifest


def test_uploads_started_at_once_in_a_new_repository_create_it_once(registry_server: Server) -> None:
    # On PostgreSQL the first upload creates the repository, audits it and inserts its session in one
    # statement; one that finds the repository created meanwhile writes nothing and inserts into it.
    sessions = [registry_server.session("team/fresh") for _ in range(6)]

    def start(http: requests.Session) -> requests.Response:
        return http.post(f"{registry_server.url}/v2/team/fresh/blobs/uploads/", timeout=TIMEOUT)

    responses = in_parallel(*(partial(start, http) for http in sessions))

    assert [r.status_code for r in responses] == [202] * len(sessions), [r.text for r in responses]
    for response in responses:
        status = sessions[0].get(urljoin(registry_server.url, response.headers["Location"]), timeout=TIMEOUT)
        assert status.status_code == 204
    created = AuditEvent.objects.filter(action=CREATE_REPOSITORY, repository="team/fresh")
    assert created.count() == 1
