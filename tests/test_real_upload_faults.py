"""Upload faults against a real server (issue 18, items 1, 2 and 3): a writer that stalls
past its lease, a worker killed mid-PATCH, a disk that fills up.

A stalled or vanished client needs raw sockets: ``requests`` sends a body whole or not at all.
"""

import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from http.client import HTTPResponse
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from django.db import connection

from registry.models import Upload
from tests.server import Server, database_url, open_environment, running

MiB = 1024 * 1024
TIMEOUT = 60
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RawPatch:
    """A PATCH (or POST) whose body the test sends piece by piece, stalling where it likes."""

    def __init__(self, url: str, declared: int, headers: dict[str, str], method: str = "PATCH") -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {declared}"]
        lines += [f"{name}: {value}" for name, value in {**OCTET_STREAM, **headers}.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, data: bytes, piece: int = 256 * 1024) -> bool:
        """Send ``data`` unless the server answers first (or hangs up); False if it did."""
        for start in range(0, len(data), piece):
            if self._ready():
                return False
            try:
                self.sock.sendall(data[start : start + piece])
            except OSError:
                return False
        return True

    def _ready(self) -> bool:
        """Whether the server said something (or hung up): then the client stops sending, as curl does."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def answer(self) -> tuple[int, dict[str, str], bytes] | None:
        """The server's answer, or None if the connection was reset before one could be read."""
        try:
            with self.sock:
                self.sock.settimeout(TIMEOUT)
                response = HTTPResponse(self.sock)
                response.begin()
                return response.status, dict(response.headers), response.read()
        except (ConnectionError, OSError):
            return None


@pytest.fixture
def server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """``filesystem`` or ``s3`` (moto), with the given extra variables."""
    store, extra = getattr(request, "param", ("filesystem", {}))
    if store == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        return {**request.getfixturevalue("s3_server").environment(bucket), **extra}
    return dict(extra)


def start_upload(http: requests.Session, server: Server) -> str:
    response = http.post(f"{server.url}/v2/team/app/blobs/uploads/", timeout=TIMEOUT)
    assert response.status_code == 202, response.text
    return urljoin(server.url, response.headers["Location"])


def finish(http: requests.Session, location: str, digest: str) -> requests.Response:
    return http.put(location, params={"digest": digest}, timeout=TIMEOUT)


def pull(http: requests.Session, server: Server, digest: str) -> bytes:
    response = http.get(
        f"{server.url}/v2/team/app/blobs/{digest}", timeout=TIMEOUT
    )  # S3: follows the redirect
    assert response.status_code == 200, response.text
    return response.content


SHORT_LEASE = {"CROW_UPLOAD_LEASE": "2s"}


@pytest.mark.parametrize(
    "server_env", [("filesystem", SHORT_LEASE), ("s3", SHORT_LEASE)], indirect=True, ids=["filesystem", "s3"]
)
def test_a_writer_that_stalled_past_its_lease_cannot_change_the_blob(
    registry_server: Server, server_env: dict[str, str]
) -> None:
    http = registry_server.session("team/app")
    location = start_upload(http, registry_server)
    data = os.urandom(8 * MiB)
    auth = {"Authorization": http.headers["Authorization"], "Content-Range": f"0-{len(data) - 1}"}

    a = RawPatch(location, len(data), auth)  # A declares 8 MiB, sends 2 MiB and stalls past the lease
    assert a.send(b"A" * 2 * MiB)
    time.sleep(3.5)
    b = http.patch(
        location, data=data, headers={**OCTET_STREAM, "Content-Range": f"0-{len(data) - 1}"}, timeout=TIMEOUT
    )
    assert b.status_code == 202, b.text
    finished = finish(http, urljoin(registry_server.url, b.headers["Location"]), sha256(data))
    assert finished.status_code == 201, finished.text
    a.send(b"X" * MiB)  # A wakes up
    a.sock.shutdown(socket.SHUT_WR)
    answered = a.answer()
    assert answered is None or answered[0] in (400, 416), answered

    pulled = pull(http, registry_server, sha256(data))
    assert sha256(pulled) == sha256(data)


def server_workers(bind: str) -> tuple[int, list[int]]:
    """The main and worker pids of the server serving ``bind`` (found by its environment)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if f"CROW_BIND={bind}".encode() in environ and b"crow.serve" in (entry / "cmdline").read_bytes():
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    [main] = [pid for pid, parent in parents.items() if parent not in parents]
    return main, [pid for pid, parent in parents.items() if parent == main]


def retrying(call, deadline: float) -> requests.Response:
    """``call()``, again while connections are refused or reset (the workers are being replaced)."""
    while True:
        try:
            return call()
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_an_upload_whose_worker_was_killed_resumes_within_seconds(registry_server: Server) -> None:
    http = registry_server.session("team/app")
    location = start_upload(http, registry_server)
    data = os.urandom(4 * MiB)
    auth = {"Authorization": http.headers["Authorization"], "Content-Range": f"0-{len(data) - 1}"}
    writer = RawPatch(location, len(data), auth)
    assert writer.send(data[:MiB])
    time.sleep(1)  # the worker has claimed the upload and is waiting for more

    _, workers = server_workers(registry_server.host)
    assert workers
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    writer.sock.close()
    killed = time.monotonic()
    deadline = killed + TIMEOUT

    status = retrying(lambda: http.get(location, timeout=TIMEOUT), deadline)
    assert status.status_code == 204, status.text
    assert status.headers["Range"] == "0-0"  # nothing of the killed PATCH was saved
    while True:
        resumed = retrying(
            lambda: http.patch(
                location,
                data=data,
                headers={**OCTET_STREAM, "Content-Range": f"0-{len(data) - 1}"},
                timeout=TIMEOUT,
            ),
            deadline,
        )
        if resumed.status_code != 416:
            break
        assert "Retry-After" in resumed.headers, resumed.text  # the dead writer's claim: when it expires
        assert time.monotonic() < deadline, resumed.text
        time.sleep(int(resumed.headers["Retry-After"]))
    assert resumed.status_code == 202, resumed.text
    assert time.monotonic() - killed < 30

    finished = finish(http, urljoin(registry_server.url, resumed.headers["Location"]), sha256(data))
    assert finished.status_code == 201, finished.text
    assert pull(http, registry_server, sha256(data)) == data


# --- A full disk: 507, and the space is free again as soon as the failed request ends ---


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs (root only); skipped where it cannot be mounted, except in CI."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs: {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def used(mount_point: Path) -> int:
    stat = os.statvfs(mount_point)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def assert_full(answered: tuple[int, dict[str, str], bytes] | None) -> None:
    assert answered is not None, "the connection was reset before the answer"
    status, headers, body = answered
    assert status == 507, body
    assert "Retry-After" not in headers
    [error] = json.loads(body)["errors"]
    assert error["code"] == "UNKNOWN"
    assert "storage is full" in error["message"]


@pytest.mark.realserver
def test_a_full_disk_answers_507_and_keeps_nothing(
    tmp_path: Path, small_disk: Path, transactional_db: None
) -> None:
    env = open_environment(
        tmp_path, small_disk / "blobs", DATABASE_URL=database_url(connection.settings_dict), CROW_WORKERS="1"
    )
    data = os.urandom(60 * MiB)
    with running(env, tmp_path / "server.log") as url:
        started = requests.post(f"{url}/v2/team/app/blobs/uploads/", timeout=TIMEOUT)
        assert started.status_code == 202, started.text
        chunked = RawPatch(
            urljoin(url, started.headers["Location"]), len(data), {"Content-Range": f"0-{len(data) - 1}"}
        )
        chunked.send(data)
        assert_full(chunked.answer())
        assert used(small_disk) < MiB
        assert Upload.objects.count() == 1  # the chunked session stays, at its saved offset
        assert (
            requests.get(urljoin(url, started.headers["Location"]), timeout=TIMEOUT).headers["Range"] == "0-0"
        )

        monolithic = RawPatch(
            f"{url}/v2/team/app/blobs/uploads/?digest={sha256(data)}", len(data), {}, method="POST"
        )
        monolithic.send(data)
        assert_full(monolithic.answer())
        assert used(small_disk) < MiB
        assert Upload.objects.count() == 1  # none for the monolithic push

        small = os.urandom(20_000)
        pushed = requests.post(
            f"{url}/v2/team/app/blobs/uploads/",
            params={"digest": sha256(small)},
            data=small,
            headers=OCTET_STREAM,
            timeout=TIMEOUT,
        )
        assert pushed.status_code == 201, pushed.text
        assert requests.get(f"{url}/v2/team/app/blobs/{sha256(small)}", timeout=TIMEOUT).content == small
    log = (tmp_path / "server.log").read_text()
    assert f"blob storage at {small_disk / 'blobs'} is full" in log
