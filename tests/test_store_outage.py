"""The blob store down, for real: moto's S3 server behind a proxy that the test blackholes (it takes
bytes and answers none) or makes refuse connections.

``/readyz`` must answer 503 within its bound and name the store, ``/healthz`` stays 200, and
readiness comes back soon after the store does (a probe stuck on the hung store must not hold the
check for minutes). A blob read that needs the store (``CROW_S3_REDIRECT=0``: the server streams
the bytes) answers the spec's JSON error with ``Retry-After``, fast; a redirect needs no store.
"""

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests import ocilayout
from tests.probes import assert_unready_for, probe, ready_again
from tests.s3server import S3Server
from tests.server import Server
from tests.tcpproxy import BLACKHOLE, FORWARD, REFUSE, TcpProxy, proxy_to

RECOVERY = 5.0  # seconds after the store is back: a probe in flight gives up within 2 s
READ_BOUND = 13.0  # seconds for a blob read to give up on a hung store: two tries of 5 s, and backoff


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[TcpProxy]:
    endpoint = urlsplit(s3_server.endpoint_url)
    with proxy_to(endpoint.hostname, endpoint.port) as proxy:
        yield proxy


@pytest.fixture
def server_env(s3_server: S3Server, s3_bucket: str, s3_proxy: TcpProxy) -> dict[str, str]:
    return {
        **s3_server.environment(s3_bucket),
        "CROW_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_proxy.port}",
        "CROW_S3_REDIRECT": "0",
    }


@pytest.mark.parametrize("mode", [BLACKHOLE, REFUSE])
def test_readiness_fails_fast_while_the_store_is_down(
    s3_proxy: TcpProxy, registry_server: Server, s3_bucket: str, mode: str
) -> None:
    assert probe(registry_server, "/readyz")[0].status_code == 200
    s3_proxy.mode = mode
    try:
        checks = assert_unready_for(registry_server, "storage")
    finally:
        s3_proxy.mode = FORWARD
    # Why: the probe's own failure, or the bound it missed (a probe still in flight).
    assert f"could not reach bucket {s3_bucket}" in checks["storage"] or "no answer" in checks["storage"]
    assert ready_again(registry_server, RECOVERY).status_code == 200


def test_a_blob_read_answers_a_json_error_fast_while_the_store_hangs(
    s3_proxy: TcpProxy, registry_server: Server
) -> None:
    http = registry_server.session("team/app")
    data = b"layer bytes " * 1000
    digest = ocilayout.sha256(data)
    url = f"{registry_server.url}/v2/team/app/blobs/{digest}"
    pushed = http.post(
        f"{registry_server.url}/v2/team/app/blobs/uploads/",
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert pushed.status_code == 201, pushed.text
    assert http.get(url, timeout=60).content == data

    s3_proxy.mode = BLACKHOLE
    try:
        started = time.monotonic()
        response = http.get(url, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        s3_proxy.mode = FORWARD
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["errors"][0]["code"] == "UNKNOWN"  # the spec has no code for "retry later"
    assert "blob storage is unavailable" in response.json()["errors"][0]["message"]
    assert response.headers["Retry-After"].isdigit()
    assert elapsed < READ_BOUND
    assert http.get(url, timeout=60).content == data
