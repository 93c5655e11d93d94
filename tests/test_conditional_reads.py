"""Conditional reads: a digest is the entity tag of its bytes, ``If-None-Match`` gets ``304``.

A cache in front of the registry (or a client that kept what it pulled) asks
again with the ETag it holds and gets no bytes; what is addressed by digest is
cacheable for a year, a manifest fetched by tag is not (the tag can move).
"""

import pytest
from django.test import Client

from tests import oci

pytestmark = [pytest.mark.django_db, pytest.mark.all_backends]

NAME = "conditional/app"
TAG = "latest"
YEAR = "max-age=31536000"


@pytest.fixture
def pushed(client: Client) -> oci.Image:
    image = oci.image("conditional")
    oci.push_image(client, NAME, image, TAG)
    return image


def quoted(digest: str) -> str:
    return f'"{digest}"'


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_blob_carries_its_digest_as_etag_and_a_years_lifetime(
    client: Client, pushed: oci.Image, method: str
) -> None:
    blob = pushed.layers[0]

    response = getattr(client, method)(f"/v2/{NAME}/blobs/{blob.digest}")

    assert response.status_code == 200
    assert response["ETag"] == quoted(blob.digest)
    assert response["Cache-Control"] == YEAR


@pytest.mark.parametrize(
    "if_none_match",
    [
        "{etag}",
        "W/{etag}",
        '"sha256:{other}", {etag}',
        "*",
    ],
    ids=["strong", "weak", "in-a-list", "any"],
)
@pytest.mark.parametrize("method", ["get", "head"])
def test_a_blob_the_client_holds_is_not_sent_again(
    client: Client, pushed: oci.Image, method: str, if_none_match: str
) -> None:
    blob = pushed.layers[0]
    header = if_none_match.format(etag=quoted(blob.digest), other="1" * 64)

    response = getattr(client, method)(f"/v2/{NAME}/blobs/{blob.digest}", headers={"If-None-Match": header})

    assert response.status_code == 304
    assert oci.content(response) == b""
    assert response["ETag"] == quoted(blob.digest)
    assert response["Docker-Content-Digest"] == blob.digest
    assert response["Cache-Control"] == YEAR
    assert response["Content-Length"] == str(blob.size)


def test_a_range_of_a_blob_the_client_holds_is_not_sent_either(client: Client, pushed: oci.Image) -> None:
    blob = pushed.layers[0]

    response = client.get(
        f"/v2/{NAME}/blobs/{blob.digest}",
        headers={"If-None-Match": quoted(blob.digest), "Range": "bytes=0-9"},
    )

    assert response.status_code == 304
    assert oci.content(response) == b""


@pytest.mark.parametrize("if_none_match", ['"sha256:{other}"', "{digest}", 'W/"{digest}x"', '""', "garbage"])
def test_a_blob_under_another_tag_is_sent_whole(
    client: Client, pushed: oci.Image, if_none_match: str
) -> None:
    blob = pushed.layers[0]
    header = if_none_match.format(digest=blob.digest, other="1" * 64)

    response = client.get(f"/v2/{NAME}/blobs/{blob.digest}", headers={"If-None-Match": header})

    assert response.status_code == 200
    assert oci.content(response) == blob.data


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_matching_tag_does_not_hide_that_a_blob_is_unknown(
    client: Client, pushed: oci.Image, method: str
) -> None:
    # Neither in this repository (the blob is another's) nor anywhere: 404, never 304.
    other = oci.layer("conditional-elsewhere")
    oci.push_blob(client, "conditional/other", other)
    for digest in (other.digest, oci.UNKNOWN_DIGEST):
        for header in (quoted(digest), "*"):
            response = getattr(client, method)(
                f"/v2/{NAME}/blobs/{digest}", headers={"If-None-Match": header}
            )

            assert response.status_code == 404, (digest, header)


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_manifest_by_digest_is_immutable(client: Client, pushed: oci.Image, method: str) -> None:
    manifest = pushed.manifest

    response = getattr(client, method)(
        f"/v2/{NAME}/manifests/{manifest.digest}", headers={"Accept": oci.MANIFEST_ACCEPT}
    )

    assert response.status_code == 200
    assert response["ETag"] == quoted(manifest.digest)
    assert response["Cache-Control"] == YEAR


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_manifest_by_tag_has_an_etag_but_no_lifetime(
    client: Client, pushed: oci.Image, method: str
) -> None:
    response = getattr(client, method)(f"/v2/{NAME}/manifests/{TAG}", headers={"Accept": oci.MANIFEST_ACCEPT})

    assert response.status_code == 200
    assert response["ETag"] == quoted(pushed.manifest.digest)
    assert not response.has_header("Cache-Control")


@pytest.mark.parametrize("reference", ["tag", "digest"])
@pytest.mark.parametrize("method", ["get", "head"])
def test_a_manifest_the_client_holds_is_not_sent_again(
    client: Client, pushed: oci.Image, reference: str, method: str
) -> None:
    manifest = pushed.manifest
    path = f"/v2/{NAME}/manifests/{TAG if reference == 'tag' else manifest.digest}"

    response = getattr(client, method)(
        path, headers={"Accept": oci.MANIFEST_ACCEPT, "If-None-Match": quoted(manifest.digest)}
    )

    assert response.status_code == 304
    assert oci.content(response) == b""
    assert response["ETag"] == quoted(manifest.digest)
    assert response["Docker-Content-Digest"] == manifest.digest
    assert response.has_header("Cache-Control") == (reference == "digest")


def test_a_tag_that_moved_sends_the_new_manifest(client: Client, pushed: oci.Image) -> None:
    newer = oci.image("conditional-newer")
    oci.push_image(client, NAME, newer, TAG)

    response = client.get(
        f"/v2/{NAME}/manifests/{TAG}",
        headers={"Accept": oci.MANIFEST_ACCEPT, "If-None-Match": quoted(pushed.manifest.digest)},
    )

    assert response.status_code == 200
    assert response["ETag"] == quoted(newer.manifest.digest)
    assert oci.content(response) == newer.manifest.data


def test_an_unknown_manifest_is_404_whatever_the_client_holds(client: Client, pushed: oci.Image) -> None:
    response = client.get(
        f"/v2/{NAME}/manifests/missing", headers={"Accept": oci.MANIFEST_ACCEPT, "If-None-Match": "*"}
    )

    oci.assert_error(response, 404, "MANIFEST_UNKNOWN")
