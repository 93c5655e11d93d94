"""crow.wsgi: /v2/ is served without the site's middleware, everything else with it.

The test client builds its own handler with every middleware, so these tests
call the production WSGI application itself.
"""

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from crow.wsgi import application
from tests import oci

pytestmark = pytest.mark.django_db


@contextmanager
def keeping_test_connection() -> Iterator[None]:
    """The handler's signals would close the test's transaction, as Django's test client knows."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def call(method: str, path: str, host: str = "127.0.0.1", **headers: str) -> tuple[int, dict, bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    answer: dict = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info=None) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = {name.lower(): value for name, value in response_headers}

    with keeping_test_connection():
        result = application(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            result.close()
    return answer["status"], answer["headers"], body


def test_registry_answers_without_the_site_middleware() -> None:
    status, headers, body = call("GET", "/v2/")
    assert status == 200
    assert headers["docker-distribution-api-version"] == "registry/2.0"
    assert headers["x-content-type-options"] == "nosniff"
    assert "x-frame-options" not in headers  # XFrameOptionsMiddleware did not run
    assert "set-cookie" not in headers
    assert json.loads(body) == {}


def test_registry_errors_are_still_the_spec_envelope() -> None:
    status, headers, body = call("GET", "/v2/no/such/manifests/latest")
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["errors"][0]["code"] == "NAME_UNKNOWN"
    assert headers["x-content-type-options"] == "nosniff"
    # A length, so that the server keeps the client's connection open after an error.
    assert headers["content-length"] == str(len(body))
    status, headers, _ = call("HEAD", f"/v2/no/such/blobs/sha256:{'0' * 64}")
    assert status == 404
    assert "content-length" in headers


def test_manifest_served_through_the_lean_handler(client) -> None:
    pushed = oci.image("lean")
    oci.push_image(client, "lean/app", pushed, "v1")
    status, headers, body = call("GET", "/v2/lean/app/manifests/v1", accept=oci.MANIFEST_ACCEPT)
    assert status == 200
    assert body == pushed.manifest.data
    assert headers["docker-content-digest"] == pushed.manifest.digest
    status, headers, body = call("HEAD", f"/v2/lean/app/blobs/{pushed.layers[0].digest}")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(pushed.layers[0].size)


def test_site_keeps_its_middleware() -> None:
    status, headers, _ = call("GET", "/admin/login/")
    assert status == 200
    assert headers["x-frame-options"] == "DENY"
    assert "csrftoken" in headers["set-cookie"]


def test_site_still_checks_the_host() -> None:
    status, _, _ = call("GET", "/admin/login/", host="evil.example")
    assert status == 400


@pytest.mark.auth
@pytest.mark.parametrize("path", ["/v2/", "/v2/team/app/manifests/latest"])
def test_registry_refuses_a_host_it_does_not_serve(path: str) -> None:
    # As the site's CommonMiddleware does; the token realm is built from the Host header.
    status, _, _ = call("GET", path, host="evil.example")
    assert status == 400


def test_registry_refuses_a_host_it_does_not_serve_when_open() -> None:
    status, _, _ = call("GET", "/v2/", host="evil.example")
    assert status == 400
