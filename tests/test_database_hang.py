"""A hung database costs each request at most the query bound: a 503 with Retry-After, then recovery.

A real server reaches PostgreSQL through a proxy this test controls. Blackholed,
the proxy acknowledges every byte and answers none: no timeout of the operating
system fires, only CRoW's own bounds (``CROW_DB_CONNECT_TIMEOUT``, and the
watchdog of ``crow.deadlines`` for ``CROW_DB_QUERY_TIMEOUT``). Every route that
needs the database then answers 503 with ``Retry-After`` and its JSON error, on
connections opened before and after the database hung; once the proxy forwards
again, the next requests succeed at once.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from django.db import connection
from django.test import Client

from tests import oci
from tests.server import Server, database_url
from tests.tcpproxy import BLACKHOLE, FORWARD, TcpProxy, proxy_to

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="puts a proxy on PostgreSQL's port; SQLite has no network"
)

NAME = "team/app"
QUERY_TIMEOUT = 2
# The watchdog cuts a call QUERY_TIMEOUT + 1 s after it started, checking every 0.5 s; without the
# bounds these requests waited until the client gave up.
BOUND = QUERY_TIMEOUT + 5
RECOVERED_WITHIN = 5  # a fresh connection takes milliseconds; the reported stall was 22 s
CLIENT_TIMEOUT = 60


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    ok: int  # the status with the database up
    headers: dict[str, str] = field(default_factory=dict)
    basic: bool = True  # log in as the test's robot (a database read)


@pytest.fixture
def db_proxy(transactional_db: None) -> Iterator[TcpProxy]:
    with proxy_to(
        connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432)
    ) as proxy:
        yield proxy


@pytest.fixture
def server_env(db_proxy: TcpProxy) -> dict[str, str]:
    proxied = dict(connection.settings_dict, HOST="127.0.0.1", PORT=str(db_proxy.port))
    return {
        "DATABASE_URL": database_url(proxied),
        "CROW_WORKERS": "1",
        "CROW_DB_CONNECT_TIMEOUT": "2s",
        "CROW_DB_QUERY_TIMEOUT": f"{QUERY_TIMEOUT}s",
    }


def test_a_hung_database_gets_fast_503s_and_recovers_at_once(
    registry_server: Server, db_proxy: TcpProxy, client: Client
) -> None:
    pushed = oci.image("hang")
    oci.push_image(client, NAME, pushed, "v1")
    calls = [
        # First, while the fast path still listens: a miss, which it answers itself on PostgreSQL (the
        # blob HEAD before each upload).
        Call("HEAD", f"/v2/{NAME}/blobs/sha256:{'1' * 64}", 404),
        Call("GET", "/v2/", 200),
        Call("GET", f"/v2/{NAME}/manifests/v1", 200, {"Accept": oci.MANIFEST_ACCEPT}),
        Call("HEAD", f"/v2/{NAME}/blobs/{pushed.layers[0].digest}", 200),
        Call("POST", f"/v2/{NAME}/blobs/uploads/", 202),
        Call("GET", f"/token?scope=repository:{NAME}:pull", 200),
        # The management API and the admin read a token or a session from the database.
        Call("GET", "/api/robots/", 401, {"Authorization": "Token not-a-token"}, basic=False),
        Call("GET", "/admin/", 302, {"Cookie": "sessionid=not-a-session"}, basic=False),
    ]
    warm = requests.Session()  # its connection, and the server thread's database connection, predate the hang
    for call in calls:
        assert _send(warm, registry_server, call).status_code == call.ok, call

    db_proxy.mode = BLACKHOLE
    for call in calls:
        for session in (warm, requests.Session()):
            started = time.monotonic()
            response = _send(session, registry_server, call)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, (call, response.status_code, response.text)
            assert elapsed < BOUND, (call, elapsed)
            assert response.headers["Retry-After"] == "5", call
            if call.method != "HEAD":
                error = response.json()["errors"][0]
                assert error["code"] == "UNKNOWN", call
                assert "database is unavailable" in error["message"], call

    db_proxy.mode = FORWARD
    for call in calls:
        started = time.monotonic()
        assert _send(requests.Session(), registry_server, call).status_code == call.ok, call
        assert time.monotonic() - started < RECOVERED_WITHIN, call
    for call in calls:
        assert _send(warm, registry_server, call).status_code == call.ok, call


def _send(session: requests.Session, server: Server, call: Call) -> requests.Response:
    return session.request(
        call.method,
        server.url + call.path,
        headers=call.headers,
        auth=(server.username, server.password) if call.basic else None,
        allow_redirects=False,
        timeout=CLIENT_TIMEOUT,
    )
