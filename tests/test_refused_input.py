"""Input the database would refuse (a NUL byte above all) is a client error, never a 500.

PostgreSQL refuses NUL in text and in jsonb, so each value a client sends that
reaches a query is checked at the edge. Run on PostgreSQL (``DATABASE_URL``)
and on SQLite: the answers are the same.
"""

from typing import Any

import pytest
from django.db import DataError
from django.test import Client
from rest_framework.authtoken.models import Token

from registry.db import manifests as manifest_rows
from tests import access, oci

pytestmark = [pytest.mark.auth, pytest.mark.django_db]

NUL = "\x00"
IMAGE = oci.image("refused")


@pytest.fixture(autouse=True)
def world(settings, tmp_path, client: Client) -> None:
    access.secure(settings, tmp_path)
    settings.CROW_LOGIN_FAILURES = 3
    alice = access.user("alice", is_staff=True)
    Token.objects.create(user=alice, key="a" * 40)
    settings.CROW_AUTH_DISABLED = True  # push the fixture image without credentials, then lock again
    oci.push_image(client, "team/app", IMAGE, "v1")
    settings.CROW_AUTH_DISABLED = False


def _v2(client: Client, url: str, **extra: Any):
    return client.get(url, headers=access.basic("alice"), **extra)


D = IMAGE.manifest.digest


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/v2/_catalog?last=%00", 400, "NAME_INVALID"),
        ("/v2/_catalog?last=Team", 400, "NAME_INVALID"),
        ("/v2/team/app/tags/list?last=%00", 400, "TAG_INVALID"),
        ("/v2/team/app/tags/list?n=1&last=v1%00", 400, "TAG_INVALID"),
        ("/v2/team/app/tags/list?last=-v1", 400, "TAG_INVALID"),
        (f"/v2/team/app/referrers/{D}?artifactType=%00", 400, "UNSUPPORTED"),
        (f"/v2/team/app/referrers/{D}?artifactType=application%2Fx%00", 400, "UNSUPPORTED"),
        (f"/v2/team/app/referrers/{D}?artifactType=not-a-media-type", 400, "UNSUPPORTED"),
        ("/v2/team/app/manifests/v1%00", 404, "MANIFEST_UNKNOWN"),
        ("/v2/team/app/blobs/sha256:%00", 404, "BLOB_UNKNOWN"),
        ("/v2/team/app%00/tags/list", 400, "NAME_INVALID"),
    ],
)
def test_it_refuses_a_query_parameter_or_path_the_database_cannot_hold(
    client: Client, url: str, status: int, code: str
) -> None:
    oci.assert_error(_v2(client, url), status, code)


def test_it_still_pages_with_a_proper_last(client: Client) -> None:
    assert _v2(client, "/v2/team/app/tags/list?last=v0").json()["tags"] == ["v1"]
    assert _v2(client, "/v2/_catalog?last=team/aaa").json()["repositories"] == ["team/app"]
    filtered = _v2(client, f"/v2/team/app/referrers/{D}?artifactType=application/vnd.example%2Bjson")
    assert filtered.status_code == 200 and filtered["OCI-Filters-Applied"] == "artifactType"


@pytest.mark.parametrize(
    ("username", "password"),
    [("al\x00ice", access.PASSWORD), ("alice\x00", "x"), ("al\tice", "x"), ("robot$c\x00i", "crow_x")],
)
@pytest.mark.parametrize("path", ["/v2/", "/token"])
def test_impossible_basic_credentials_are_wrong_credentials(
    client: Client, path: str, username: str, password: str
) -> None:
    response = client.get(path, headers=access.basic(username, password))

    oci.assert_error(response, 401, "UNAUTHORIZED")


def test_a_nul_password_is_a_wrong_password_and_counts_as_a_failure(client: Client) -> None:
    for _ in range(3):
        oci.assert_error(client.get("/v2/", headers=access.basic("alice", f"x{NUL}")), 401, "UNAUTHORIZED")

    oci.assert_error(client.get("/v2/", headers=access.basic("alice")), 429, "TOOMANYREQUESTS")


def test_the_token_form_refuses_a_nul_username_as_wrong_credentials(client: Client) -> None:
    response = client.post("/token", {"grant_type": "password", "username": f"alice{NUL}", "password": "x"})

    oci.assert_error(response, 401, "UNAUTHORIZED")


def test_the_token_service_grants_nothing_for_a_scope_with_a_nul(client: Client) -> None:
    token = access.token(client, f"repository:team/app{NUL}:pull", headers=access.basic("alice"))

    oci.assert_error(client.get("/v2/team/app/tags/list", headers=access.bearer(token)), 401)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"artifact_type": f"application/x{NUL}"}, "MANIFEST_INVALID"),
        ({"artifact_type": "x" * 300}, "MANIFEST_INVALID"),
        ({"annotations": {"note": f"a{NUL}b"}}, "MANIFEST_INVALID"),
        ({"annotations": {f"k{NUL}": "v"}}, "MANIFEST_INVALID"),
    ],
)
def test_it_refuses_a_manifest_whose_fields_the_database_cannot_hold(
    client: Client, settings, change: dict, code: str
) -> None:
    settings.CROW_AUTH_DISABLED = True
    manifest = oci.image_manifest(IMAGE.config, IMAGE.layers, **change)

    oci.assert_error(oci.put_manifest(client, "team/app", "v2", manifest), 400, code)


API = {"Authorization": "Token " + "a" * 40}


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("get", "/api/repositories/team%00app/tags/", None, 404),
        ("get", "/api/robots/c%00i/", None, 404),
        ("post", "/api/grants/", {"pattern": "team/*", "user": f"al{NUL}ice", "actions": ["pull"]}, 400),
        ("post", "/api/grants/", {"pattern": "team/*", "group": f"g{NUL}", "actions": ["pull"]}, 400),
        ("post", "/api/grants/", {"pattern": f"team/{NUL}", "user": "alice", "actions": ["pull"]}, 400),
        ("post", "/api/robots/", {"name": f"c{NUL}i", "patterns": ["alice/*"], "actions": ["pull"]}, 400),
    ],
)
def test_the_management_api_refuses_nul_too(client: Client, method: str, url: str, body, status: int) -> None:
    call = getattr(client, method)
    response = (
        call(url, body, content_type="application/json", headers=API) if body else call(url, headers=API)
    )

    assert response.status_code == status, response.content


def test_a_value_the_database_refuses_anyway_is_a_400_not_a_500(client: Client, monkeypatch) -> None:
    # Every known path checks first; this stands for one that a future change forgets.
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    monkeypatch.setattr(manifest_rows, "served", refuse)

    response = _v2(client, "/v2/team/app/manifests/v1")

    oci.assert_error(response, 400, "UNSUPPORTED")
    head = client.head("/v2/team/app/manifests/v1", headers=access.basic("alice"))
    assert head.status_code == 400 and head.content == b""
