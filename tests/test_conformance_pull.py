"""The pull workflow of the OCI distribution-spec conformance suite."""

import pytest
from django.test import Client

from tests import oci

pytestmark = [pytest.mark.django_db, pytest.mark.all_backends]

NAME = "conformance/pull"
TAG = "latest"


@pytest.fixture
def pushed(client: Client) -> oci.Image:
    image = oci.image("pull")
    oci.push_image(client, NAME, image, TAG)
    return image


def test_it_answers_the_base_route(client: Client) -> None:
    response = client.get("/v2/")

    assert response.status_code == 200
    assert response["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_it_gets_a_manifest(client: Client, pushed: oci.Image, by: str) -> None:
    manifest = pushed.manifest
    reference = TAG if by == "tag" else manifest.digest

    response = oci.get_manifest(client, NAME, reference)

    assert response.status_code == 200
    assert response["Content-Type"] == oci.OCI_MANIFEST
    assert response["Docker-Content-Digest"] == manifest.digest
    assert response["Content-Length"] == str(manifest.size)
    assert oci.content(response) == manifest.data


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_it_heads_a_manifest(client: Client, pushed: oci.Image, by: str) -> None:
    manifest = pushed.manifest
    reference = TAG if by == "tag" else manifest.digest

    response = client.head(f"/v2/{NAME}/manifests/{reference}", headers={"Accept": oci.MANIFEST_ACCEPT})

    assert response.status_code == 200
    assert response["Content-Type"] == oci.OCI_MANIFEST
    assert response["Docker-Content-Digest"] == manifest.digest
    assert response["Content-Length"] == str(manifest.size)
    assert oci.content(response) == b""


@pytest.mark.parametrize("reference", ["nonexistent", oci.UNKNOWN_DIGEST])
def test_it_answers_manifest_unknown(client: Client, pushed: oci.Image, reference: str) -> None:
    response = oci.get_manifest(client, NAME, reference)

    oci.assert_error(response, 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("reference", ["nonexistent", oci.UNKNOWN_DIGEST])
def test_it_answers_404_to_head_of_an_unknown_manifest(
    client: Client, pushed: oci.Image, reference: str
) -> None:
    response = client.head(f"/v2/{NAME}/manifests/{reference}")

    assert response.status_code == 404
    assert oci.content(response) == b""


def test_it_answers_404_for_a_manifest_of_an_unknown_repository(client: Client) -> None:
    response = oci.get_manifest(client, "conformance/nowhere", TAG)

    oci.assert_error(response, 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")


def test_it_answers_an_invalid_reference_with_an_error_envelope(client: Client, pushed: oci.Image) -> None:
    # The suite accepts 400 or 404 here; either way the body is the envelope.
    response = oci.get_manifest(client, NAME, "sha256:totallywrong")

    assert response.status_code in (400, 404)
    oci.assert_error(response, response.status_code, *oci.SPEC_ERROR_CODES)


def test_it_gets_a_blob(client: Client, pushed: oci.Image) -> None:
    blob = pushed.layers[0]

    response = client.get(f"/v2/{NAME}/blobs/{blob.digest}")

    assert response.status_code == 200
    assert response["Content-Length"] == str(blob.size)
    assert response["Docker-Content-Digest"] == blob.digest
    assert oci.content(response) == blob.data


def test_it_heads_a_blob(client: Client, pushed: oci.Image) -> None:
    blob = pushed.config

    response = client.head(f"/v2/{NAME}/blobs/{blob.digest}")

    assert response.status_code == 200
    assert response["Content-Length"] == str(blob.size)
    assert response["Docker-Content-Digest"] == blob.digest
    assert oci.content(response) == b""


def test_it_gets_a_range_of_a_blob(client: Client, pushed: oci.Image) -> None:
    blob = pushed.layers[0]

    response = client.get(f"/v2/{NAME}/blobs/{blob.digest}", headers={"Range": "bytes=10-19"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 10-19/{blob.size}"
    assert response["Content-Length"] == "10"
    assert oci.content(response) == blob.data[10:20]


def test_it_refuses_an_unsatisfiable_range(client: Client, pushed: oci.Image) -> None:
    blob = pushed.layers[0]
    past_the_end = f"bytes={blob.size + 10}-{blob.size + 20}"

    response = client.get(f"/v2/{NAME}/blobs/{blob.digest}", headers={"Range": past_the_end})

    assert response.status_code == 416


def test_it_answers_blob_unknown(client: Client, pushed: oci.Image) -> None:
    response = client.get(f"/v2/{NAME}/blobs/{oci.UNKNOWN_DIGEST}")

    oci.assert_error(response, 404, "BLOB_UNKNOWN")


def test_it_answers_404_to_head_of_an_unknown_blob(client: Client, pushed: oci.Image) -> None:
    response = client.head(f"/v2/{NAME}/blobs/{oci.UNKNOWN_DIGEST}")

    assert response.status_code == 404
    assert oci.content(response) == b""


def test_it_hides_a_blob_of_another_repository(client: Client, pushed: oci.Image) -> None:
    other = "conformance/other"
    oci.push_blob(client, other, oci.layer("other"))

    response = client.get(f"/v2/{other}/blobs/{pushed.layers[0].digest}")

    oci.assert_error(response, 404, "BLOB_UNKNOWN")


def test_it_gets_an_index_with_its_media_type(client: Client) -> None:
    children = [oci.image("amd64"), oci.image("arm64")]
    for child in children:
        oci.push_image(client, NAME, child)
    index = oci.image_index([child.manifest for child in children])
    oci.push_manifest(client, NAME, "multi", index)

    response = oci.get_manifest(client, NAME, "multi")

    assert response.status_code == 200
    assert response["Content-Type"] == oci.OCI_INDEX
    assert response["Docker-Content-Digest"] == index.digest
    assert oci.content(response) == index.data
