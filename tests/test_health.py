"""``/healthz`` and ``/readyz`` on a real server, with the database and the blob store up and down.

PostgreSQL is reached through a proxy this test blackholes (it takes bytes and
answers none: only CRoW's own bounds fire); the filesystem store fails when its
root is not a directory. ``/readyz`` must say which failed, fast, and recover; ``/healthz``
answers throughout. Neither needs credentials or a known ``Host``, and probes
stay out of the access log.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.probes import BOUND, assert_unready_for, probe, ready_again
from tests.server import Server, database_url
from tests.tcpproxy import BLACKHOLE, FORWARD, TcpProxy, proxy_to

RECOVERY = 15.0  # a hung check ends at the query bound (2 s) plus the watchdog's cut


def test_probes_answer_without_credentials_and_stay_out_of_the_access_log(registry_server: Server) -> None:
    healthy, _ = probe(registry_server, "/healthz")
    assert healthy.status_code == 200
    assert healthy.json() == {"status": "ok"}
    ready, _ = probe(registry_server, "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "storage": "ok"},
        "read_only": False,
    }
    assert requests.head(f"{registry_server.url}/readyz", timeout=30).status_code == 200
    assert requests.delete(f"{registry_server.url}/healthz", timeout=30).status_code == 405
    requests.get(f"{registry_server.url}/v2/", timeout=30)
    time.sleep(0.5)
    log = registry_server.log.read_text()
    assert '"GET /v2/"' in log
    assert "/healthz" not in log and "/readyz" not in log


def test_readiness_fails_while_the_blob_root_is_not_a_directory(
    registry_server: Server, blob_root: Path
) -> None:
    assert probe(registry_server, "/readyz")[0].status_code == 200
    moved = blob_root.with_name(blob_root.name + "-away")
    blob_root.rename(moved)
    blob_root.write_bytes(b"")  # e.g. a volume that failed to mount, as root sees it: no chmod stops root
    try:
        response, elapsed = probe(registry_server, "/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == "ok"
        assert "blob root" in body["checks"]["storage"]
        assert elapsed < BOUND
        assert probe(registry_server, "/healthz")[0].status_code == 200
    finally:
        blob_root.unlink()
        moved.rename(blob_root)
    assert ready_again(registry_server, RECOVERY).status_code == 200


@pytest.fixture
def db_proxy(transactional_db: None) -> Iterator[TcpProxy]:
    if connection.vendor != "postgresql":
        pytest.skip("puts a proxy on PostgreSQL's port; SQLite has no network")
    with proxy_to(
        connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432)
    ) as proxy:
        yield proxy


@pytest.fixture
def server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if "db_proxy" not in request.fixturenames:
        return {}
    proxy = request.getfixturevalue("db_proxy")
    proxied = dict(connection.settings_dict, HOST="127.0.0.1", PORT=str(proxy.port))
    return {
        "DATABASE_URL": database_url(proxied),
        "CROW_DB_CONNECT_TIMEOUT": "2s",
        "CROW_DB_QUERY_TIMEOUT": "2s",
    }


def test_readiness_fails_fast_while_the_database_hangs(db_proxy: TcpProxy, registry_server: Server) -> None:
    assert probe(registry_server, "/readyz")[0].status_code == 200
    db_proxy.mode = BLACKHOLE
    try:
        assert_unready_for(registry_server, "database")
    finally:
        db_proxy.mode = FORWARD
    assert ready_again(registry_server, RECOVERY).status_code == 200
