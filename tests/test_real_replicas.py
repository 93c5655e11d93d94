"""Two server processes sharing one database and one bucket: any replica takes any request.

An upload's offset, digest state and multipart parts live in PostgreSQL and
the bucket, never in a process, so chunks may alternate between replicas; two
chunks sent at once to one session through two replicas are never both taken.
"""

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.s3server import S3Server
from tests.server import Server, free_port, running

MiB = 1024 * 1024
TIMEOUT = 60
NAME = "team/app"


@pytest.fixture
def server_env(s3_server: S3Server, s3_bucket: str) -> dict[str, str]:
    return s3_server.environment(s3_bucket)


@pytest.fixture
def replica(registry_server: Server, tmp_path: Path) -> Iterator[Server]:
    """A second server process: the first one's environment (database, bucket, token key), another port."""
    env = {**registry_server.env, "CROW_BIND": f"127.0.0.1:{free_port()}"}
    log = tmp_path / "replica.log"
    with running(env, log) as url:
        yield Server(
            url=url,
            host=url.removeprefix("http://"),
            log=log,
            username=registry_server.username,
            password=registry_server.password,
            env=env,
        )


def patch(
    session: requests.Session, server: Server, location: str, chunk: bytes, start: int
) -> requests.Response:
    return session.patch(
        urljoin(server.url, location),
        data=chunk,
        headers={
            "Content-Range": f"{start}-{start + len(chunk) - 1}",
            "Content-Type": "application/octet-stream",
        },
        timeout=TIMEOUT,
    )


def test_it_takes_an_upload_whose_chunks_alternate_between_replicas(
    registry_server: Server, replica: Server
) -> None:
    session = registry_server.session(NAME)  # one token: both replicas share the signing key
    data = bytes(range(256)) * (4 * MiB // 256) * 4  # 16 MiB: parts are 5 MiB, chunks cut across them
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    servers = [registry_server, replica]
    location = session.post(f"{registry_server.url}/v2/{NAME}/blobs/uploads/", timeout=TIMEOUT).headers[
        "Location"
    ]
    offset = 0
    for number, size in enumerate([3 * MiB, 7 * MiB + 5, 4 * MiB - 5, 2 * MiB]):
        response = patch(session, servers[number % 2], location, data[offset : offset + size], offset)
        assert response.status_code == 202, response.text
        offset += size
        assert response.headers["Range"] == f"0-{offset - 1}"
        location = response.headers["Location"]
    status = session.get(urljoin(registry_server.url, location), timeout=TIMEOUT)
    assert status.headers["Range"] == f"0-{len(data) - 1}"
    finished = session.put(urljoin(replica.url, location), params={"digest": digest}, timeout=TIMEOUT)
    assert finished.status_code == 201, finished.text
    for server in servers:
        pulled = session.get(
            f"{server.url}/v2/{NAME}/blobs/{digest}", timeout=TIMEOUT
        )  # follows the redirect
        assert pulled.status_code == 200
        assert hashlib.sha256(pulled.content).hexdigest() == digest.removeprefix("sha256:")


def test_it_never_takes_two_chunks_for_one_offset_through_two_replicas(
    registry_server: Server, replica: Server
) -> None:
    session = registry_server.session(NAME)
    location = session.post(f"{registry_server.url}/v2/{NAME}/blobs/uploads/", timeout=TIMEOUT).headers[
        "Location"
    ]
    answers: list[tuple[bytes, requests.Response]] = []
    start = threading.Barrier(2)

    def send(server: Server, chunk: bytes) -> None:
        start.wait()
        answers.append((chunk, patch(registry_server.session(NAME), server, location, chunk, 0)))

    threads = [
        threading.Thread(target=send, args=(server, bytes([fill]) * 6 * MiB))
        for server, fill in ((registry_server, 1), (replica, 2))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(response.status_code for _, response in answers) == [202, 416]
    winner = next(chunk for chunk, response in answers if response.status_code == 202)
    digest = "sha256:" + hashlib.sha256(winner).hexdigest()
    finished = session.put(urljoin(replica.url, location), params={"digest": digest}, timeout=TIMEOUT)
    assert finished.status_code == 201, finished.text  # exactly the accepted chunk, nothing interleaved
    assert session.get(f"{registry_server.url}/v2/{NAME}/blobs/{digest}", timeout=TIMEOUT).content == winner
