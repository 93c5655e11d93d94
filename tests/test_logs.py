"""``CROW_LOG_FORMAT=json`` on a real server: one JSON object per line, request ids end to end.

The server's own output is read: every line must be a JSON object; each
request has one access line with its id (the client's ``X-Request-ID`` when
sane, else a new one, echoed in the answer either way, fast path included),
route, repository, reference, user, status, bytes and client address (the
forwarded one, behind a trusted proxy); a request that fails logs its
traceback under the same id.
"""

import pytest
import requests
from django.test import Client

from registry.models import Manifest
from tests import oci
from tests.accesslog import access, lines
from tests.server import Server

NAME = "team/logs"


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"CROW_LOG_FORMAT": "json", "CROW_TRUSTED_PROXIES": "127.0.0.1/32"}


def test_each_request_has_one_json_access_line_under_its_id(registry_server: Server, client: Client) -> None:
    pushed = oci.image("logs")
    oci.push_image(client, NAME, pushed, "v1")
    token = registry_server.token(NAME)
    bearer = {"Authorization": f"Bearer {token}", "Accept": oci.MANIFEST_ACCEPT}
    url = f"{registry_server.url}/v2/{NAME}"

    # Twice: on PostgreSQL the first read fills the fast path's cache, the second is answered from it.
    for attempt in ("a", "b"):
        response = requests.get(f"{url}/manifests/v1", headers={**bearer, "X-Request-ID": f"pull-{attempt}"})
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] == f"pull-{attempt}"
        entry = access(registry_server.log, f"pull-{attempt}")
        assert entry["route"] == "manifest_get"
        assert (entry["method"], entry["repository"], entry["reference"]) == ("GET", NAME, "v1")
        assert entry["user"] == registry_server.username
        assert entry["status"] == 200
        assert entry["bytes_out"] == len(response.content) and entry["bytes_in"] == 0
        assert entry["client"] == "127.0.0.1"
        assert entry["level"] == "INFO" and entry["duration"] >= 0

    # A missing blob, which the fast path answers itself on PostgreSQL.
    missing = f"sha256:{'4' * 64}"
    response = requests.head(f"{url}/blobs/{missing}", headers={**bearer, "X-Request-ID": "miss-1"})
    assert response.status_code == 404 and response.headers["X-Request-ID"] == "miss-1"
    entry = access(registry_server.log, "miss-1")
    assert (entry["route"], entry["reference"], entry["status"]) == ("blob_head", missing, 404)

    # No sane id: a new one, echoed and logged. Behind the trusted proxy: the forwarded client.
    response = requests.get(
        f"{url}/tags/list",
        headers={**bearer, "X-Request-ID": "not sane!", "X-Forwarded-For": "192.0.2.1, 198.51.100.7"},
    )
    assert response.status_code == 200
    generated = response.headers["X-Request-ID"]
    assert generated and generated != "not sane!"
    entry = access(registry_server.log, generated)
    assert (entry["route"], entry["client"]) == ("tags_list", "198.51.100.7")

    # An upload's body counts in.
    blob = oci.layer("logs-upload", size=5000)
    response = requests.post(
        f"{url}/blobs/uploads/?digest={blob.digest}",
        data=blob.data,
        headers={
            "Authorization": f"Bearer {registry_server.token(NAME)}",
            "Content-Type": "application/octet-stream",
            "X-Request-ID": "upload-1",
        },
    )
    assert response.status_code == 201, response.text
    entry = access(registry_server.log, "upload-1")
    assert (entry["route"], entry["bytes_in"], entry["status"]) == ("blob_upload_start", 5000, 201)


def test_a_failure_logs_its_traceback_under_the_request_id(registry_server: Server, client: Client) -> None:
    pushed = oci.image("broken")
    oci.push_image(client, NAME, pushed, "v1")
    # A media type that cannot be a header: building the answer raises, as a bug would.
    Manifest.objects.filter(repository__name=NAME).update(
        media_type="application/vnd.oci.image.manifest.v1+json\nX"
    )
    response = requests.get(
        f"{registry_server.url}/v2/{NAME}/manifests/{pushed.manifest.digest}",
        headers={
            "Authorization": f"Bearer {registry_server.token(NAME)}",
            "Accept": oci.MANIFEST_ACCEPT,
            "X-Request-ID": "boom-1",
        },
    )
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "boom-1"
    entries = [e for e in lines(registry_server.log) if e.get("request_id") == "boom-1"]
    errors = [e for e in entries if e["level"] == "ERROR"]
    assert errors and "Traceback" in errors[0]["error"], entries
    assert [e["status"] for e in entries if e["logger"] == "crow.access"] == [500]
