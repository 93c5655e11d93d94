"""The fast path answers exactly as Django does: the same requests to a granian server with it and one
without (``CROW_FASTPATH=0``) get the same status, headers and body, on a miss and on a hit.

PostgreSQL only (on SQLite there is no fast path: ``test_it_is_off_on_sqlite``).
"""

import hashlib
import json
from pathlib import Path

import pytest
from django.db import connection

from registry.auth import keys, tokens
from registry.auth.models import PULL
from tests.fastservers import granian, request

pytestmark = [pytest.mark.realserver, pytest.mark.django_db(transaction=True)]

OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"


def _push(port: int, name: str) -> dict[str, str]:
    """An image (tag ``latest``) and an index of it (tag ``multi``) in ``name``; their digests."""

    def blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, body = request(port, "POST", f"/v2/{name}/blobs/uploads/?digest={digest}", body=data)
        assert status == 201, body
        return digest

    layer, config = b"layer bytes " * 100, b'{"architecture": "amd64"}'
    image = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": blob(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": blob(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    found = {"layer": "sha256:" + hashlib.sha256(layer).hexdigest()}
    found["image"] = _put(port, name, "latest", image, OCI)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [{"mediaType": OCI, "digest": found["image"], "size": len(image)}],
        }
    ).encode()
    found["index"] = _put(port, name, "multi", index, INDEX)
    return found


def _put(port: int, name: str, tag: str, content: bytes, media_type: str) -> str:
    status, headers, body = request(
        port, "PUT", f"/v2/{name}/manifests/{tag}", {"Content-Type": media_type}, content
    )
    assert status == 201, body
    return dict(headers)["docker-content-digest"]


def _matrix(found: dict[str, str], tokens_: dict[str, str]) -> list[tuple[str, str, dict[str, str]]]:
    paths = [
        "/v2/team/app/manifests/latest",
        "/v2/team/app/manifests/multi",
        f"/v2/team/app/manifests/{found['image']}",
        f"/v2/team/app/manifests/{found['index']}",
        "/v2/team/app/manifests/nope",
        "/v2/team/app/manifests/sha256:" + "0" * 64,
        "/v2/team/none/manifests/latest",
        "/v2/team%2Fapp/manifests/latest",
        "/v2/team/app/manifests/lat%65st",
        "/v2/Team/App/manifests/latest",
        "/v2/" + "a" * 300 + "/manifests/latest",
        "/v2/team/app/manifests/latest?x=1",
        f"/v2/team/app/blobs/{found['layer']}",
        f"/v2/team/app/blobs/{found['image']}",
        "/v2/team/app/blobs/sha256:" + "1" * 64,
        f"/v2/team/none/blobs/{found['layer']}",
        f"/v2/team%2fapp/blobs/{found['layer']}",
    ]
    variants = [
        {},
        {"Accept": OCI},
        {"Accept": f"{OCI}, {INDEX}"},
        {"Accept": DOCKER},
        {"Accept": "*/*"},
        {"If-None-Match": f'"{found["image"]}"'},
        {"If-None-Match": f'"{found["layer"]}"'},
        {"Range": "bytes=0-9"},
        {"Range": "bytes=5000-"},
        {"Host": "evil.example"},
        {"Content-Length": "0"},
    ]
    variants += [{"Authorization": value} for value in tokens_.values()]
    return [(method, path, headers) for path in paths for method in ("GET", "HEAD") for headers in variants]


@pytest.fixture
def token_key(tmp_path: Path, settings) -> Path:
    key = tmp_path / "token-key.pem"
    key.write_text(keys.generate_pem())
    settings.CROW_TOKEN_KEY = key.read_text()
    return key


def _tokens() -> dict[str, str]:
    pull = tokens.issue("ci", [{"type": "repository", "name": "team/app", "actions": [PULL]}]).token
    other = tokens.issue("ci", [{"type": "repository", "name": "team/other", "actions": [PULL]}]).token
    return {
        "pull": f"Bearer {pull}",
        "pull, odd case": f"bEaReR   {pull}",
        "other repository": f"Bearer {other}",
        "garbage": "Bearer not.a.token",
        # Malformed: wrong passwords are rate-limited, so their answers change from one try to the next.
        "basic": "Basic !!!",
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the fast path needs PostgreSQL")
@pytest.mark.parametrize("auth", ["disabled", "enabled"])
def test_it_answers_as_django_does(tmp_path: Path, blob_root: Path, token_key: Path, auth: str) -> None:
    common = {
        "CROW_BLOB_ROOT": str(blob_root),
        "CROW_TOKEN_KEY_FILE": str(token_key),
        "CROW_AUTH_DISABLED": "1",
        # Else the challenge names each server's own port.
        "CROW_TOKEN_REALM": "http://registry.example/token",
    }
    with granian(tmp_path, "writer", **common) as writer:
        found = _push(writer, "team/app")
    common["CROW_AUTH_DISABLED"] = "1" if auth == "disabled" else "0"
    matrix = _matrix(found, _tokens())
    with granian(tmp_path, "django", CROW_FASTPATH="0", **common) as django:
        expected = [request(django, method, path, headers) for method, path, headers in matrix]
    with granian(tmp_path, "fast", CROW_FASTPATH="1", **common) as fast:
        for attempt in ("miss", "hit"):
            for (method, path, headers), wanted in zip(matrix, expected, strict=True):
                assert request(fast, method, path, headers) == wanted, (attempt, method, path, headers)
    served = [answer for answer in expected if answer[0] == 200]
    assert len(served) >= 24  # the matrix holds answers the fast path gives, not only Django's


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the fast path needs PostgreSQL")
def test_it_sends_a_blob_with_pathsend(tmp_path: Path, blob_root: Path) -> None:
    with granian(tmp_path, "fast", CROW_BLOB_ROOT=str(blob_root), CROW_AUTH_DISABLED="1") as fast:
        found = _push(fast, "team/app")
        for _ in range(2):
            status, _, body = request(fast, "GET", f"/v2/team/app/blobs/{found['layer']}")
            assert (status, body) == (200, b"layer bytes " * 100)
