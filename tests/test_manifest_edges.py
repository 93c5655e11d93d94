"""Manifest pushes and pulls beyond the conformance suite: sizes, Accept, methods, settings."""

import json

import pytest

from registry.models import Manifest, Tag
from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"


def pushed_image(client, seed: str = "edge") -> oci.Image:
    image = oci.image(seed)
    oci.push_image(client, NAME, image, "v1")
    return image


def test_it_refuses_a_layer_whose_declared_size_is_wrong(client) -> None:
    layer, config = oci.layer("sized"), oci.config("sized")
    oci.push_blob(client, NAME, layer)
    oci.push_blob(client, NAME, config)
    document = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor(size=layer.size + 1)],
    }
    response = oci.put_manifest(client, NAME, "v1", oci.Blob(json.dumps(document).encode(), oci.OCI_MANIFEST))
    oci.assert_error(response, 400, "MANIFEST_INVALID")
    assert not Manifest.objects.exists()


def test_it_serves_an_index_only_to_clients_that_accept_one(client) -> None:
    image = oci.image("child")
    oci.push_image(client, NAME, image)
    index = oci.image_index([image.manifest])
    oci.push_manifest(client, NAME, "multi", index)
    refused = client.get(f"/v2/{NAME}/manifests/multi", headers={"Accept": oci.OCI_MANIFEST})
    oci.assert_error(refused, 404, "MANIFEST_UNKNOWN")
    for accept in (oci.OCI_INDEX, "*/*", f"{oci.OCI_MANIFEST}, {oci.OCI_INDEX};q=0.5", None):
        headers = {"Accept": accept} if accept else {}
        response = client.get(f"/v2/{NAME}/manifests/multi", headers=headers)
        assert response.status_code == 200, accept
        assert response.content == index.data


def test_it_answers_head_with_headers_and_no_body(client) -> None:
    image = pushed_image(client)
    response = client.head(f"/v2/{NAME}/manifests/v1")
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Length"] == str(image.manifest.size)
    assert response["Docker-Content-Digest"] == image.manifest.digest
    assert response["Content-Type"] == oci.OCI_MANIFEST


def test_it_answers_head_of_an_unknown_manifest_without_a_body(client) -> None:
    pushed_image(client)
    response = client.head(f"/v2/{NAME}/manifests/nope")
    assert response.status_code == 404
    assert response.content == b""


def test_it_moves_a_tag_in_place(client) -> None:
    first = pushed_image(client, "first")
    second = oci.image("second")
    oci.push_image(client, NAME, second, "v1")
    assert Tag.objects.count() == 1
    assert oci.get_manifest(client, NAME, "v1").content == second.manifest.data
    assert oci.get_manifest(client, NAME, first.manifest.digest).status_code == 200


def test_it_keeps_the_bytes_exactly_as_pushed(client) -> None:
    layer, config = oci.layer("bytes"), oci.config("bytes")
    oci.push_blob(client, NAME, layer)
    oci.push_blob(client, NAME, config)
    # Odd spacing and key order: a re-serialised manifest would change its digest.
    layers, config_descriptor = json.dumps(layer.descriptor()), json.dumps(config.descriptor())
    content = (
        f'{{ "layers": [{layers}],\n  "config": {config_descriptor}, '
        f'"schemaVersion": 2,"mediaType":"{oci.OCI_MANIFEST}" }}'
    ).encode()
    manifest = oci.Blob(content, oci.OCI_MANIFEST)
    response = oci.push_manifest(client, NAME, "odd", manifest)
    assert response["Docker-Content-Digest"] == manifest.digest
    assert oci.get_manifest(client, NAME, manifest.digest).content == content


def test_it_answers_405_for_a_method_an_endpoint_lacks(client) -> None:
    response = client.post(f"/v2/{NAME}/manifests/v1")
    oci.assert_error(response, 405, "UNSUPPORTED")
    assert response["Allow"] == "DELETE, GET, HEAD, PUT"


def test_it_refuses_deletes_when_they_are_disabled(client, settings) -> None:
    image = pushed_image(client)
    settings.CROW_DELETE_ENABLED = False
    oci.assert_error(client.delete(f"/v2/{NAME}/manifests/v1"), 405, "UNSUPPORTED")
    oci.assert_error(client.delete(f"/v2/{NAME}/blobs/{image.layers[0].digest}"), 405, "UNSUPPORTED")
    assert oci.get_manifest(client, NAME, "v1").status_code == 200


def test_it_refuses_a_page_size_that_is_not_a_number(client) -> None:
    pushed_image(client)
    oci.assert_error(client.get(f"/v2/{NAME}/tags/list?n=many"), 400, "PAGINATION_NUMBER_INVALID")
    oci.assert_error(client.get("/v2/_catalog?n=-1"), 400, "PAGINATION_NUMBER_INVALID")
