"""A reference that cannot exist names nothing: reading or deleting it is a 404, writing to it a 400.

The spec: a manifest or blob "not found" is ``404 Not Found`` (the conformance
suite pulls ``.INVALID_MANIFEST_NAME`` and expects 404); a tag pushed must
match the tag grammar, a digest the digest grammar; the referrers API never
answers 404, and a malformed digest there is ``400``.
"""

import pytest
from django.test import Client

from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"
IMAGE = oci.image("impossible")
SHA384 = "sha384:" + "a" * 96


@pytest.fixture(autouse=True)
def pushed(client: Client) -> None:
    oci.push_image(client, NAME, IMAGE, "v1")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "manifests/.INVALID_MANIFEST_NAME", 404, "MANIFEST_UNKNOWN"),
        ("HEAD", "manifests/.INVALID_MANIFEST_NAME", 404, None),
        ("DELETE", "manifests/.INVALID_MANIFEST_NAME", 404, "MANIFEST_UNKNOWN"),
        ("GET", "manifests/" + "t" * 129, 404, "MANIFEST_UNKNOWN"),
        ("GET", f"manifests/{SHA384}", 404, "MANIFEST_UNKNOWN"),
        ("HEAD", f"manifests/{SHA384}", 404, None),
        ("GET", "manifests/sha256:totallywrong", 404, "MANIFEST_UNKNOWN"),
        ("PUT", "manifests/.INVALID_MANIFEST_NAME", 400, "TAG_INVALID"),
        ("PUT", "manifests/sha256:totallywrong", 400, "DIGEST_INVALID"),
        ("PUT", f"manifests/{SHA384}", 400, "DIGEST_INVALID"),
        ("GET", "blobs/sha256:totallywrong", 404, "BLOB_UNKNOWN"),
        ("HEAD", f"blobs/{SHA384}", 404, None),
        ("DELETE", "blobs/latest", 404, "BLOB_UNKNOWN"),
        ("GET", "referrers/sha256:totallywrong", 400, "DIGEST_INVALID"),
        ("GET", f"referrers/{SHA384}", 400, "DIGEST_INVALID"),
    ],
)
def test_it_answers_an_impossible_reference(
    client: Client, method: str, path: str, status: int, code: str | None
) -> None:
    response = client.generic(
        method,
        f"/v2/{NAME}/{path}",
        data=IMAGE.manifest.data if method == "PUT" else b"",
        content_type=oci.OCI_MANIFEST,
        headers={"Accept": oci.MANIFEST_ACCEPT},
    )

    if code is None:  # HEAD: the status alone, no body
        assert response.status_code == status
        assert oci.content(response) == b""
    else:
        oci.assert_error(response, status, code)


def test_the_pushed_manifest_is_still_there(client: Client) -> None:
    assert oci.get_manifest(client, NAME, "v1").status_code == 200
