"""The routes, as a table: URL in, route and arguments (or the diagnosed error) out."""

import pytest
from django.urls import resolve

from registry.views.base import diagnose

D = "sha256:" + "a" * 64
D512 = "sha512:" + "b" * 128
U = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("path", "route", "kwargs"),
    [
        ("/v2/", "version", {}),
        ("/v2/_catalog", "catalog", {}),
        ("/v2/app/tags/list", "tags", {"name": "app"}),
        ("/v2/team/app/tags/list", "tags", {"name": "team/app"}),
        ("/v2/a/b/c/d/e/tags/list", "tags", {"name": "a/b/c/d/e"}),
        ("/v2/my-app_1.x/tags/list", "tags", {"name": "my-app_1.x"}),
        ("/v2/a__b/tags/list", "tags", {"name": "a__b"}),
        ("/v2/a---b/tags/list", "tags", {"name": "a---b"}),
        ("/v2/team/app/manifests/latest", "manifest", {"name": "team/app", "reference": "latest"}),
        ("/v2/team/app/manifests/V1.0_rc-1", "manifest", {"name": "team/app", "reference": "V1.0_rc-1"}),
        (f"/v2/team/app/manifests/{D}", "manifest", {"name": "team/app", "reference": D}),
        (f"/v2/team/app/manifests/{D512}", "manifest", {"name": "team/app", "reference": D512}),
        # A repository may be called like a route segment.
        ("/v2/manifests/manifests/latest", "manifest", {"name": "manifests", "reference": "latest"}),
        ("/v2/a/blobs/b/tags/list", "tags", {"name": "a/blobs/b"}),
        ("/v2/team/app/blobs/uploads/", "uploads", {"name": "team/app"}),
        ("/v2/team/app/blobs/uploads", "uploads", {"name": "team/app"}),
        (f"/v2/team/app/blobs/uploads/{U}", "upload", {"name": "team/app", "upload_id": U}),
        (f"/v2/team/app/blobs/{D}", "blob", {"name": "team/app", "digest": D}),
        (f"/v2/team/app/referrers/{D}", "referrers", {"name": "team/app", "digest": D}),
    ],
)
def test_it_routes(path: str, route: str, kwargs: dict) -> None:
    match = resolve(path)
    assert (match.url_name, match.kwargs) == (route, kwargs)


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "Team/app/tags/list", "NAME_INVALID"),
        ("GET", "team//app/tags/list", "NAME_INVALID"),
        ("GET", "team/../app/tags/list", "NAME_INVALID"),
        ("GET", "../etc/manifests/latest", "NAME_INVALID"),
        ("GET", "-app/tags/list", "NAME_INVALID"),
        ("GET", "app-/tags/list", "NAME_INVALID"),
        ("GET", "a.-b/tags/list", "NAME_INVALID"),
        ("PUT", "app/manifests/-bad", "TAG_INVALID"),
        ("PUT", "app/manifests/.INVALID_MANIFEST_NAME", "TAG_INVALID"),
        ("PUT", "app/manifests/" + "t" * 129, "TAG_INVALID"),
        ("PUT", "app/manifests/sha256:abc", "DIGEST_INVALID"),
        ("PUT", "app/manifests/sha256:" + "A" * 64, "DIGEST_INVALID"),
        ("PUT", "app/manifests/md5:" + "a" * 32, "DIGEST_INVALID"),
        ("PUT", "app/manifests/sha256:totallywrong", "DIGEST_INVALID"),
        # A reference that cannot exist names a manifest that does not: reading or deleting it is a 404.
        ("GET", "app/manifests/.INVALID_MANIFEST_NAME", "MANIFEST_UNKNOWN"),
        ("HEAD", "app/manifests/.INVALID_MANIFEST_NAME", "MANIFEST_UNKNOWN"),
        ("DELETE", "app/manifests/.INVALID_MANIFEST_NAME", "MANIFEST_UNKNOWN"),
        ("GET", "app/manifests/" + "t" * 129, "MANIFEST_UNKNOWN"),
        ("GET", "app/manifests/sha256:totallywrong", "MANIFEST_UNKNOWN"),
        ("HEAD", "app/manifests/md5:" + "a" * 32, "MANIFEST_UNKNOWN"),
        ("GET", "app/manifests/sha384:" + "a" * 96, "MANIFEST_UNKNOWN"),
        ("GET", "app/blobs/sha256:zz", "BLOB_UNKNOWN"),
        ("HEAD", "app/blobs/latest", "BLOB_UNKNOWN"),
        ("DELETE", "app/blobs/md5:" + "a" * 32, "BLOB_UNKNOWN"),
        ("POST", "app/blobs/sha256:zz", "DIGEST_INVALID"),
        # The referrers API never answers 404: a malformed digest is a bad request.
        ("GET", "app/referrers/latest", "DIGEST_INVALID"),
        ("GET", "app/referrers/sha384:" + "a" * 96, "DIGEST_INVALID"),
        ("GET", "Bad/manifests/.INVALID_MANIFEST_NAME", "NAME_INVALID"),
        ("GET", "app/blobs/uploads/not-an-upload", "BLOB_UPLOAD_UNKNOWN"),
        ("GET", "app/nothing-here", "UNSUPPORTED"),
    ],
)
def test_it_diagnoses_what_no_route_matches(method: str, path: str, code: str) -> None:
    assert resolve(f"/v2/{path}").url_name == "unmatched"
    assert diagnose(path, method).error.code == code


@pytest.mark.django_db
def test_it_limits_names_to_255_characters(client) -> None:
    name = "/".join(["a" * 127, "b" * 127])  # 255 characters
    assert client.get(f"/v2/{name}/tags/list").json()["errors"][0]["code"] == "NAME_UNKNOWN"
    response = client.get(f"/v2/{name}x/tags/list")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "NAME_INVALID"


@pytest.mark.django_db
def test_it_refuses_an_encoded_slash_in_a_name(client) -> None:
    # gunicorn hands the undecoded request line over as RAW_URI; the decoded path looks valid.
    response = client.get("/v2/team/app/tags/list", RAW_URI="/v2/team%2Fapp/tags/list")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "NAME_INVALID"
