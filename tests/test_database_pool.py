"""PostgreSQL connections come from a bounded pool, and no request holds one while it waits for a client.

The server runs each request in a thread of its own, as many threads as
requests in flight. A process opens at most ``CROW_DB_POOL_SIZE`` connections;
a request that finds none free within ``CROW_DB_POOL_TIMEOUT`` answers 503 with
``Retry-After``. An upload holds a connection for its claim, its renewals and
its save, not while its body trickles in; a download, not while it is sent.
Here the pool is shrunk to one or two connections and requests run in threads
through Django's test client.
"""

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection
from django.test import Client

from crow.pooled import DropClosedByServer, retry_for_waiting
from tests import oci

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no pool")

NAME = "team/app"
DATA = bytes(range(256)) * 400  # 102,400 bytes
WAIT = 30  # seconds a test waits for what should take milliseconds


@pytest.fixture
def pool_of(transactional_db: None) -> Iterator[Callable[[int], None]]:
    """Resize the pool (a new pool, ``size`` connections at most, 1 s to wait for one)."""
    options = connection.settings_dict["OPTIONS"]
    original = options["pool"]

    def resize(size: int) -> None:
        connection.close()
        connection.close_pool()
        options["pool"] = {**original, "min_size": 1, "max_size": size, "timeout": 1}

    yield resize
    connection.close()
    connection.close_pool()
    options["pool"] = original


class SlowInput(io.RawIOBase):
    """A ``wsgi.input`` that gives ``first`` at once, then waits for ``go`` before the rest."""

    def __init__(self, first: bytes, rest: bytes, go: threading.Event) -> None:
        self._parts = [first, rest]
        self._go = go
        self.waiting = threading.Event()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._parts:
            return b""
        if len(self._parts) == 1:
            self.waiting.set()
            assert self._go.wait(WAIT)
        return self._parts.pop(0)

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


@postgresql_only
def test_it_checks_each_connection_it_hands_out_without_a_query(pool_of, client: Client) -> None:
    pool_of(2)
    assert client.get(f"/v2/{NAME}/tags/list").status_code == 404
    assert isinstance(connection.pool._check, DropClosedByServer)
    assert connection.pool._reconnect_failed is retry_for_waiting


@postgresql_only
def test_a_connection_the_server_closed_is_dropped_before_a_request_uses_it(pool_of, client: Client) -> None:
    pool_of(2)
    pushed = oci.layer("closed")
    assert oci.push_blob(client, NAME, pushed).status_code == 201
    # What a restart of PostgreSQL does to the idle connections in the pool.
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with psycopg.connect(**_direct_parameters(), autocommit=True) as admin:
        assert admin.execute(f"SELECT count(*) {others}").fetchone()[0] > 0
        admin.execute(f"SELECT pg_terminate_backend(pid) {others}")
        deadline = time.monotonic() + WAIT
        while admin.execute(f"SELECT count(*) {others}").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
    statuses = [client.head(f"/v2/{NAME}/blobs/{pushed.digest}").status_code for _ in range(4)]
    assert statuses == [200] * 4


@postgresql_only
def test_a_request_that_finds_no_free_connection_answers_503(pool_of, client: Client) -> None:
    pool_of(1)
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        connection.ensure_connection()
        taken.set()
        done.wait(WAIT)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(WAIT)
        response = client.get(f"/v2/{NAME}/tags/list")
        oci.assert_error(response, 503, "UNKNOWN")
        assert response["Retry-After"] == "5"
    finally:
        done.set()
        holder.join(WAIT)
    assert client.get(f"/v2/{NAME}/tags/list").status_code == 404


@postgresql_only
def test_uploads_waiting_for_their_bytes_hold_no_connection(pool_of, client: Client) -> None:
    pool_of(2)
    pushed = oci.layer("other")
    oci.push_blob(client, NAME, pushed)
    urls = [oci.start_upload(client, NAME) for _ in range(5)]
    go = threading.Event()
    inputs = [SlowInput(DATA[:1000], DATA[1000:], go) for _ in urls]

    def patch(url: str, body: SlowInput) -> tuple[int, str]:
        response = Client().generic(
            "PATCH",
            url,
            **{"wsgi.input": body, "CONTENT_LENGTH": str(len(DATA)), "CONTENT_TYPE": oci.OCTET_STREAM},
        )
        return response.status_code, response.get("Range", "")

    with ThreadPoolExecutor(len(urls)) as threads:
        patches = [threads.submit(patch, url, body) for url, body in zip(urls, inputs, strict=True)]
        try:
            assert all(body.waiting.wait(WAIT) for body in inputs)
            # Five uploads in flight, each past its claim and waiting for bytes; the pool has two.
            other = Client()
            assert other.head(f"/v2/{NAME}/blobs/{pushed.digest}").status_code == 200
            assert other.post(f"/v2/{NAME}/blobs/uploads/").status_code == 202
            assert other.get(urls[0]).status_code == 204
        finally:
            go.set()
        assert [each.result(WAIT) for each in patches] == [(202, f"0-{len(DATA) - 1}")] * len(urls)
    finished = client.put(oci.with_query(urls[0], digest=oci.sha256(DATA)), data=b"")
    assert finished.status_code == 201
    assert oci.content(client.get(f"/v2/{NAME}/blobs/{oci.sha256(DATA)}")) == DATA


@postgresql_only
def test_a_download_being_sent_holds_no_connection(pool_of, client: Client) -> None:
    pool_of(1)
    pushed = oci.layer("download", size=4 * 1024 * 1024)
    oci.push_blob(client, NAME, pushed)
    download = client.get(f"/v2/{NAME}/blobs/{pushed.digest}")  # its body not read yet
    try:
        assert download.status_code == 200
        with ThreadPoolExecutor(1) as thread:
            head = thread.submit(lambda: Client().head(f"/v2/{NAME}/blobs/{pushed.digest}").status_code)
            assert head.result(WAIT) == 200
        assert oci.content(download) == pushed.data
    finally:
        download.close()


@pytest.mark.parametrize(
    ("environment", "pool"),
    [
        ({}, {"max_size": 8, "timeout": 3}),
        ({"CROW_DB_POOL_SIZE": "20", "CROW_DB_POOL_TIMEOUT": "1m"}, {"max_size": 20, "timeout": 60}),
    ],
)
def test_the_pool_is_sized_from_the_environment(environment: dict[str, str], pool: dict[str, int]) -> None:
    options = _postgresql_settings(environment, "print(json.dumps(settings.DATABASES['default']['OPTIONS']))")
    assert json.loads(options.stdout)["pool"].items() >= pool.items()


def test_a_pool_timeout_of_zero_is_refused_at_start_up() -> None:
    started = _postgresql_settings({"CROW_DB_POOL_TIMEOUT": "0"}, "")
    assert started.returncode != 0
    assert "CROW_DB_POOL_TIMEOUT must be at least 1s" in started.stderr


def _postgresql_settings(environment: dict[str, str], then: str) -> subprocess.CompletedProcess[str]:
    """Import ``crow.settings`` in a process of its own with a PostgreSQL URL (nothing connects)."""
    env = {**os.environ, "DATABASE_URL": "postgres://crow@127.0.0.1:1/crow", **environment}
    for name in ("CROW_DB_POOL_SIZE", "CROW_DB_POOL_TIMEOUT"):
        if name not in environment:
            env.pop(name, None)
    code = f"import json\nfrom crow import settings\n{then}"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=WAIT)


def _direct_parameters() -> dict[str, object]:
    """Where the test database is, for a connection of its own outside the pool."""
    settings = connection.settings_dict
    parameters = {"dbname": settings["NAME"], "user": settings["USER"], "host": settings["HOST"]}
    if settings["PORT"]:
        parameters["port"] = settings["PORT"]
    if settings["PASSWORD"]:
        parameters["password"] = settings["PASSWORD"]
    return parameters
