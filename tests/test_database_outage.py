"""When the database is down or restarts, /v2/ answers 503 with Retry-After, and recovers by itself.

A 500 tells a client that the registry is broken; a 503 with ``Retry-After``
tells it to come back (containerd and docker retry it). A server whose
database connections were cut (PostgreSQL restarted, a failover) must not keep
failing on the dead connection: the next request connects again.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests import oci
from tests.server import Server, free_port, open_environment, running

TIMEOUT = 30
NAME = "team/app"


@pytest.mark.realserver
def test_a_registry_without_its_database_answers_503(tmp_path: Path, blob_root: Path) -> None:
    # A PostgreSQL URL where nothing listens: every query fails to connect.
    env = open_environment(
        tmp_path,
        blob_root,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/crow",
        CROW_WORKERS="1",
    )
    with running(env, tmp_path / "server.log") as url:
        assert requests.get(f"{url}/v2/", timeout=TIMEOUT).status_code == 200  # no query needed
        for method, path in (
            ("GET", f"/v2/{NAME}/manifests/v1"),
            ("HEAD", f"/v2/{NAME}/blobs/sha256:{'0' * 64}"),
            ("POST", f"/v2/{NAME}/blobs/uploads/"),
        ):
            response = requests.request(method, url + path, timeout=TIMEOUT)
            assert response.status_code == 503, (method, path, response.text)
            assert response.headers["Retry-After"] == "5"
            if method != "HEAD":
                assert response.json()["errors"][0]["code"] == "UNKNOWN"
                assert "database is unavailable" in response.json()["errors"][0]["message"]


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"CROW_WORKERS": "1"}  # at most CROW_THREADS connections to lose


@pytest.mark.skipif(connection.vendor != "postgresql", reason="cuts PostgreSQL's connections")
def test_a_registry_whose_connections_were_cut_reconnects_without_failing_a_request(
    registry_server: Server,
) -> None:
    blob = oci.layer("outage")
    blob_url = f"{registry_server.url}/v2/{NAME}/blobs/{blob.digest}"
    # As many keep-alive clients as the worker has threads, so that each thread holds a connection.
    sessions = [registry_server.session(NAME) for _ in range(4)]
    pushed = sessions[0].post(
        oci.with_query(f"{registry_server.url}/v2/{NAME}/blobs/uploads/", digest=blob.digest),
        data=blob.data,
        headers={"Content-Type": oci.OCTET_STREAM},
        timeout=TIMEOUT,
    )
    assert pushed.status_code == 201
    with ThreadPoolExecutor(len(sessions)) as pool:
        assert set(
            pool.map(lambda session: session.head(blob_url, timeout=TIMEOUT).status_code, sessions)
        ) == {200}

    _cut_the_servers_connections()

    # A pooled connection that the server closed is dropped before a request uses it, not after a 503.
    statuses = [session.head(blob_url, timeout=TIMEOUT).status_code for _ in range(5) for session in sessions]
    assert statuses == [200] * len(statuses), statuses
    assert sessions[0].get(blob_url, timeout=TIMEOUT).content == blob.data


def _cut_the_servers_connections() -> None:
    """What a restart of PostgreSQL does to the server's connections, and wait until they are gone."""
    others = "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity {others}")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            cursor.execute(f"SELECT count(*) FROM pg_stat_activity {others}")
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError("the server's connections outlived pg_terminate_backend")
