"""An answer given before the body was read reaches a client that sends its whole body first.

``http.client`` and ``urllib`` write the whole request, then read the answer,
and send no ``Expect: 100-continue``. A server that answers and closes with
the body unread makes the kernel reset the connection under the client's
feet (granian alone does): a broken pipe instead of the 413. Within
``DRAIN_LIMIT`` the connection stays open for the next request; beyond it, the
answer says ``Connection: close`` and the connection lingers until the client is done.
"""

import base64
import http.client
import json
import urllib.error
import urllib.request

from crow.earlyanswers import DRAIN_LIMIT
from tests import oci
from tests.server import Server

NAME = "team/app"
TIMEOUT = 60
MANIFEST_TOO_LARGE = 5 * 1024 * 1024  # the limit is 4 MiB
BEYOND_THE_DRAIN = 64 * 1024 * 1024


def test_a_manifest_too_large_is_read_as_413_and_the_connection_kept(registry_server: Server) -> None:
    assert MANIFEST_TOO_LARGE < DRAIN_LIMIT
    connection = _connect(registry_server)
    status, headers, body = _send(
        connection, "PUT", f"/v2/{NAME}/manifests/v1", MANIFEST_TOO_LARGE, _basic(registry_server)
    )
    assert status == 413
    assert json.loads(body)["errors"][0]["code"] == "MANIFEST_INVALID"
    assert "close" not in headers.get("Connection", "")
    # The same connection serves the next request (http.client would open a new one after a close).
    sock = connection.sock
    status, _, _ = _send(connection, "GET", "/v2/", 0, _basic(registry_server))
    assert status == 200
    assert connection.sock is sock


def test_a_refused_push_is_read_as_401(registry_server: Server) -> None:
    status, headers, body = _send(
        _connect(registry_server), "PUT", f"/v2/{NAME}/manifests/v1", MANIFEST_TOO_LARGE, {}
    )
    assert status == 401
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
    assert "WWW-Authenticate" in headers


def test_urllib_reads_the_413(registry_server: Server) -> None:
    request = urllib.request.Request(
        f"{registry_server.url}/v2/{NAME}/manifests/v1",
        data=b"{" * MANIFEST_TOO_LARGE,
        method="PUT",
        headers={"Content-Type": oci.OCI_MANIFEST, **_basic(registry_server)},
    )
    try:
        urllib.request.urlopen(request, timeout=TIMEOUT)
        raise AssertionError("a 5 MiB manifest was accepted")
    except urllib.error.HTTPError as error:
        assert error.code == 413
        assert json.loads(error.read())["errors"][0]["code"] == "MANIFEST_INVALID"


def test_a_patch_beyond_the_drain_limit_is_read_as_404_then_closed(registry_server: Server) -> None:
    connection = _connect(registry_server)
    status, headers, body = _send(
        connection,
        "PATCH",
        f"/v2/{NAME}/blobs/uploads/no-such-upload",
        BEYOND_THE_DRAIN,
        {"Content-Type": oci.OCTET_STREAM, **_basic(registry_server)},
    )
    assert status == 404
    assert json.loads(body)["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert headers["Connection"] == "close"


def _connect(server: Server) -> http.client.HTTPConnection:
    host, port = server.host.split(":")
    return http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)


def _send(
    connection: http.client.HTTPConnection, method: str, path: str, size: int, headers: dict[str, str]
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """The whole body first, then the answer: what http.client does (no Expect: 100-continue)."""
    connection.request(method, path, body=b"{" * size, headers={"Content-Type": oci.OCI_MANIFEST, **headers})
    response = connection.getresponse()
    return response.status, response.headers, response.read()


def _basic(server: Server) -> dict[str, str]:
    credentials = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}
