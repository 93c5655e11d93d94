"""The content management workflow of the OCI distribution-spec conformance suite."""

import pytest
from django.test import Client

from tests import oci

pytestmark = [pytest.mark.django_db, pytest.mark.all_backends]

NAME = "conformance/management"
OTHER = "conformance/management-other"


@pytest.fixture
def pushed(client: Client) -> oci.Image:
    image = oci.image("management")
    oci.push_image(client, NAME, image, "tagtest0")
    oci.push_manifest(client, NAME, "tagtest1", image.manifest)
    return image


def tags(client: Client, name: str = NAME) -> list[str]:
    response = client.get(f"/v2/{name}/tags/list")
    assert response.status_code == 200
    return oci.document(response)["tags"]


def test_it_deletes_a_tag(client: Client, pushed: oci.Image) -> None:
    response = client.delete(f"/v2/{NAME}/manifests/tagtest0")

    assert response.status_code == 202
    oci.assert_error(oci.get_manifest(client, NAME, "tagtest0"), 404, "MANIFEST_UNKNOWN")
    by_digest = oci.get_manifest(client, NAME, pushed.manifest.digest)
    assert by_digest.status_code == 200
    assert oci.content(by_digest) == pushed.manifest.data
    assert oci.get_manifest(client, NAME, "tagtest1").status_code == 200
    assert tags(client) == ["tagtest1"]


def test_it_deletes_a_manifest_and_its_tags(client: Client, pushed: oci.Image) -> None:
    response = client.delete(f"/v2/{NAME}/manifests/{pushed.manifest.digest}")

    assert response.status_code == 202
    for reference in (pushed.manifest.digest, "tagtest0", "tagtest1"):
        oci.assert_error(oci.get_manifest(client, NAME, reference), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{NAME}/manifests/{pushed.manifest.digest}").status_code == 404
    assert tags(client) == []


def test_it_deletes_a_manifest_only_in_its_repository(client: Client, pushed: oci.Image) -> None:
    oci.push_image(client, OTHER, pushed, "latest")

    client.delete(f"/v2/{NAME}/manifests/{pushed.manifest.digest}")

    assert oci.get_manifest(client, OTHER, "latest").status_code == 200


def test_it_pushes_a_manifest_again_after_deleting_it(client: Client, pushed: oci.Image) -> None:
    client.delete(f"/v2/{NAME}/manifests/{pushed.manifest.digest}")

    oci.push_manifest(client, NAME, "again", pushed.manifest)

    assert oci.content(oci.get_manifest(client, NAME, "again")) == pushed.manifest.data


@pytest.mark.parametrize("reference", ["nonexistent", oci.UNKNOWN_DIGEST])
def test_it_answers_404_to_deleting_an_unknown_manifest(
    client: Client, pushed: oci.Image, reference: str
) -> None:
    response = client.delete(f"/v2/{NAME}/manifests/{reference}")

    oci.assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_it_deletes_a_blob(client: Client, pushed: oci.Image) -> None:
    blob = pushed.layers[0]
    oci.push_blob(client, OTHER, blob)

    response = client.delete(f"/v2/{NAME}/blobs/{blob.digest}")

    assert response.status_code == 202
    oci.assert_error(client.get(f"/v2/{NAME}/blobs/{blob.digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{NAME}/blobs/{blob.digest}").status_code == 404
    elsewhere = client.get(f"/v2/{OTHER}/blobs/{blob.digest}")
    assert elsewhere.status_code == 200
    assert oci.content(elsewhere) == blob.data


def test_it_deletes_the_config_blob(client: Client, pushed: oci.Image) -> None:
    response = client.delete(f"/v2/{NAME}/blobs/{pushed.config.digest}")

    assert response.status_code == 202
    oci.assert_error(client.get(f"/v2/{NAME}/blobs/{pushed.config.digest}"), 404, "BLOB_UNKNOWN")


def test_it_pushes_a_blob_again_after_deleting_it(client: Client, pushed: oci.Image) -> None:
    blob = pushed.layers[0]
    client.delete(f"/v2/{NAME}/blobs/{blob.digest}")

    oci.push_blob(client, NAME, blob)

    response = client.get(f"/v2/{NAME}/blobs/{blob.digest}")
    assert response.status_code == 200
    assert oci.content(response) == blob.data


def test_it_answers_blob_unknown_to_deleting_an_unknown_blob(client: Client, pushed: oci.Image) -> None:
    response = client.delete(f"/v2/{NAME}/blobs/{oci.UNKNOWN_DIGEST}")

    oci.assert_error(response, 404, "BLOB_UNKNOWN")


def test_it_answers_404_to_deleting_a_blob_twice(client: Client, pushed: oci.Image) -> None:
    blob = pushed.layers[0]
    assert client.delete(f"/v2/{NAME}/blobs/{blob.digest}").status_code == 202

    response = client.delete(f"/v2/{NAME}/blobs/{blob.digest}")

    oci.assert_error(response, 404, "BLOB_UNKNOWN")


def test_it_drops_a_deleted_referrer_from_the_referrers(client: Client, pushed: oci.Image) -> None:
    oci.push_blob(client, NAME, oci.EMPTY_CONFIG)
    referrer = oci.image_manifest(
        oci.EMPTY_CONFIG, artifact_type="application/vnd.example", subject=pushed.manifest
    )
    oci.push_manifest(client, NAME, referrer.digest, referrer)

    response = client.delete(f"/v2/{NAME}/manifests/{referrer.digest}")

    assert response.status_code == 202
    listing = client.get(f"/v2/{NAME}/referrers/{pushed.manifest.digest}")
    assert listing.status_code == 200
    assert oci.document(listing)["manifests"] == []
