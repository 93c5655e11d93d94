"""The push workflow of the OCI distribution-spec conformance suite."""

import json
from typing import Any

import pytest
from django.http.response import HttpResponseBase
from django.test import Client

from tests import oci

pytestmark = [pytest.mark.django_db, pytest.mark.all_backends]

NAME = "conformance/push"
OTHER = "conformance/crossmount"
BLOB = oci.layer("push-blob", size=30)


def assert_blob_stored(client: Client, name: str, blob: oci.Blob) -> None:
    response = client.get(f"/v2/{name}/blobs/{blob.digest}")
    assert response.status_code == 200
    assert oci.content(response) == blob.data


def assert_blob_created(response: HttpResponseBase, name: str, blob: oci.Blob) -> None:
    assert response.status_code == 201, oci.content(response)
    assert oci.path_of(response["Location"]) == f"/v2/{name}/blobs/{blob.digest}"
    assert response["Docker-Content-Digest"] == blob.digest


# --- Blob uploads -------------------------------------------------------------


def test_it_starts_an_upload(client: Client) -> None:
    response = client.post(f"/v2/{NAME}/blobs/uploads/")

    assert response.status_code == 202
    assert oci.path_of(response["Location"]).startswith(f"/v2/{NAME}/blobs/uploads/")


def test_it_pushes_a_blob_monolithically(client: Client) -> None:
    url = oci.start_upload(client, NAME)

    response = client.put(
        oci.with_query(url, digest=BLOB.digest), data=BLOB.data, content_type=oci.OCTET_STREAM
    )

    assert_blob_created(response, NAME, BLOB)
    assert_blob_stored(client, NAME, BLOB)


def test_it_pushes_a_blob_in_a_single_post(client: Client) -> None:
    response = client.post(
        f"/v2/{NAME}/blobs/uploads/?digest={BLOB.digest}",
        data=BLOB.data,
        content_type=oci.OCTET_STREAM,
    )

    assert_blob_created(response, NAME, BLOB)
    assert_blob_stored(client, NAME, BLOB)


def test_it_pushes_a_streamed_blob(client: Client) -> None:
    url = oci.start_upload(client, NAME)

    patched = client.generic("PATCH", url, data=BLOB.data, content_type=oci.OCTET_STREAM)
    assert patched.status_code == 202
    response = client.put(oci.with_query(patched["Location"], digest=BLOB.digest))

    assert_blob_created(response, NAME, BLOB)
    assert_blob_stored(client, NAME, BLOB)


def test_it_pushes_a_blob_in_chunks(client: Client) -> None:
    url = oci.start_upload(client, NAME)

    first = oci.patch_chunk(client, url, BLOB.data[:10], 0)
    assert first.status_code == 202
    assert first["Range"] == "0-9"
    second = oci.patch_chunk(client, first["Location"], BLOB.data[10:], 10)
    assert second.status_code == 202
    assert second["Range"] == f"0-{BLOB.size - 1}"
    response = client.put(oci.with_query(second["Location"], digest=BLOB.digest))

    assert_blob_created(response, NAME, BLOB)
    assert_blob_stored(client, NAME, BLOB)


def test_it_takes_the_last_chunk_with_the_put(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    first = oci.patch_chunk(client, url, BLOB.data[:10], 0)
    assert first.status_code == 202

    response = client.put(
        oci.with_query(first["Location"], digest=BLOB.digest),
        data=BLOB.data[10:],
        content_type=oci.OCTET_STREAM,
        headers={"Content-Range": f"10-{BLOB.size - 1}"},
    )

    assert_blob_created(response, NAME, BLOB)
    assert_blob_stored(client, NAME, BLOB)


def test_it_refuses_an_out_of_order_first_chunk(client: Client) -> None:
    url = oci.start_upload(client, NAME)

    response = oci.patch_chunk(client, url, BLOB.data[10:20], 10)

    oci.assert_error(response, 416)
    # The session survives: the right chunk is still welcome.
    retried = oci.patch_chunk(client, url, BLOB.data[:10], 0)
    assert retried.status_code == 202
    assert retried["Range"] == "0-9"


@pytest.mark.parametrize("start", [0, 5, 20], ids=["resent", "overlapping", "gap"])
def test_it_refuses_a_chunk_that_does_not_follow(client: Client, start: int) -> None:
    url = oci.start_upload(client, NAME)
    first = oci.patch_chunk(client, url, BLOB.data[:10], 0)
    assert first.status_code == 202

    response = oci.patch_chunk(client, first["Location"], BLOB.data[start : start + 10], start)

    oci.assert_error(response, 416)
    status = client.get(first["Location"])
    assert status.status_code == 204
    assert status["Range"] == "0-9"
    second = oci.patch_chunk(client, status["Location"], BLOB.data[10:], 10)
    assert second.status_code == 202
    finished = client.put(oci.with_query(second["Location"], digest=BLOB.digest))
    assert_blob_created(finished, NAME, BLOB)
    assert_blob_stored(client, NAME, BLOB)


def test_it_reports_the_upload_status(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, BLOB.data[:10], 0)

    response = client.get(url)

    assert response.status_code == 204
    assert response["Range"] == "0-9"
    assert oci.path_of(response["Location"]) == oci.path_of(url)
    assert response["Docker-Upload-UUID"]


def test_it_cancels_an_upload(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, BLOB.data[:10], 0)

    response = client.delete(url)

    assert response.status_code == 204
    oci.assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    oci.assert_error(oci.patch_chunk(client, url, BLOB.data[10:], 10), 404, "BLOB_UPLOAD_UNKNOWN")


def test_it_refuses_a_digest_that_does_not_match(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    claimed = oci.sha256(b"something else")

    response = client.put(oci.with_query(url, digest=claimed), data=BLOB.data, content_type=oci.OCTET_STREAM)

    oci.assert_error(response, 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{NAME}/blobs/{claimed}").status_code == 404
    assert client.head(f"/v2/{NAME}/blobs/{BLOB.digest}").status_code == 404


def test_it_refuses_a_malformed_digest_parameter(client: Client) -> None:
    url = oci.start_upload(client, NAME)

    response = client.put(
        oci.with_query(url, digest="sha256:nothex"), data=BLOB.data, content_type=oci.OCTET_STREAM
    )

    oci.assert_error(response, 400, "DIGEST_INVALID")


def test_it_refuses_to_finish_an_upload_without_a_digest(client: Client) -> None:
    url = oci.start_upload(client, NAME)

    response = client.put(url, data=BLOB.data, content_type=oci.OCTET_STREAM)

    oci.assert_error(response, 400, "DIGEST_INVALID", "BLOB_UPLOAD_INVALID")


@pytest.mark.parametrize("content_range", ["0-", "9-0", "abc"])
def test_it_refuses_a_malformed_content_range(client: Client, content_range: str) -> None:
    url = oci.start_upload(client, NAME)

    response = client.generic(
        "PATCH",
        url,
        data=BLOB.data[:10],
        content_type=oci.OCTET_STREAM,
        headers={"Content-Range": content_range},
    )

    oci.assert_error(response, 416)


def test_it_forgets_a_finished_upload(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    client.put(oci.with_query(url, digest=BLOB.digest), data=BLOB.data, content_type=oci.OCTET_STREAM)

    oci.assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("digest", ["sha256:nothex", "sha256:abc", "sha256:" + "A" * 64])
def test_it_answers_an_impossible_digest_in_a_blob_url_as_unknown(client: Client, digest: str) -> None:
    # No blob has such a digest: "If the blob is not found in the registry, ... 404" (spec).
    oci.push_blob(client, NAME, BLOB)

    response = client.get(f"/v2/{NAME}/blobs/{digest}")

    oci.assert_error(response, 404, "BLOB_UNKNOWN")


# --- Cross-repository mounts ----------------------------------------------------


def test_it_mounts_a_blob_from_another_repository(client: Client) -> None:
    oci.push_blob(client, NAME, BLOB)

    response = client.post(f"/v2/{OTHER}/blobs/uploads/?mount={BLOB.digest}&from={NAME}")

    assert_blob_created(response, OTHER, BLOB)
    assert_blob_stored(client, OTHER, BLOB)


def test_it_mounts_a_known_blob_without_from(client: Client) -> None:
    oci.push_blob(client, NAME, BLOB)

    response = client.post(f"/v2/{OTHER}/blobs/uploads/?mount={BLOB.digest}")

    assert_blob_created(response, OTHER, BLOB)
    assert_blob_stored(client, OTHER, BLOB)


@pytest.mark.parametrize("source", [NAME, None], ids=["from", "without-from"])
def test_it_falls_back_to_an_upload_for_an_unknown_blob(client: Client, source: str | None) -> None:
    oci.push_blob(client, NAME, BLOB)
    query = f"mount={oci.UNKNOWN_DIGEST}" + (f"&from={source}" if source else "")

    response = client.post(f"/v2/{OTHER}/blobs/uploads/?{query}")

    assert response.status_code == 202
    assert oci.path_of(response["Location"]).startswith(f"/v2/{OTHER}/blobs/uploads/")
    assert client.head(f"/v2/{OTHER}/blobs/{oci.UNKNOWN_DIGEST}").status_code == 404


# --- Manifests --------------------------------------------------------------------


def assert_manifest_created(client: Client, response: HttpResponseBase, manifest: oci.Blob) -> None:
    assert response.status_code == 201, oci.content(response)
    assert response["Docker-Content-Digest"] == manifest.digest
    pulled = client.get(response["Location"], headers={"Accept": oci.MANIFEST_ACCEPT})
    assert pulled.status_code == 200
    assert oci.content(pulled) == manifest.data


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_it_pushes_a_manifest(client: Client, by: str) -> None:
    image = oci.image("push")
    for blob in image.blobs:
        oci.push_blob(client, NAME, blob)
    reference = "v1" if by == "tag" else image.manifest.digest

    response = oci.put_manifest(client, NAME, reference, image.manifest)

    assert_manifest_created(client, response, image.manifest)
    pulled = oci.get_manifest(client, NAME, reference)
    assert pulled["Docker-Content-Digest"] == image.manifest.digest


def test_it_pushes_a_manifest_without_layers(client: Client) -> None:
    manifest = oci.image_manifest(oci.EMPTY_CONFIG, artifact_type="application/vnd.example")
    oci.push_blob(client, NAME, oci.EMPTY_CONFIG)

    response = oci.put_manifest(client, NAME, "emptylayer", manifest)

    assert_manifest_created(client, response, manifest)


@pytest.mark.parametrize("missing", ["config", "layer"])
def test_it_refuses_a_manifest_with_an_unknown_blob(client: Client, missing: str) -> None:
    image = oci.image("unknown-blob")
    present = image.layers[0] if missing == "config" else image.config
    oci.push_blob(client, NAME, present)

    response = oci.put_manifest(client, NAME, "v1", image.manifest)

    oci.assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert oci.get_manifest(client, NAME, "v1").status_code == 404


def test_it_refuses_a_manifest_under_another_digest(client: Client) -> None:
    image = oci.image("wrong-digest")
    for blob in image.blobs:
        oci.push_blob(client, NAME, blob)

    response = oci.put_manifest(client, NAME, oci.UNKNOWN_DIGEST, image.manifest)

    oci.assert_error(response, 400, "DIGEST_INVALID")


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"[]",
        json.dumps({"schemaVersion": 1, "mediaType": oci.OCI_MANIFEST, "layers": []}).encode(),
        json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "config": "x"}).encode(),
    ],
    ids=["not-json", "not-an-object", "schema-version-1", "config-not-a-descriptor"],
)
def test_it_refuses_an_invalid_manifest(client: Client, data: bytes) -> None:
    response = oci.put_manifest(client, NAME, "v1", oci.Blob(data, oci.OCI_MANIFEST))

    oci.assert_error(response, 400, "MANIFEST_INVALID")


def test_it_moves_a_tag_to_the_last_manifest_pushed(client: Client) -> None:
    first, second = oci.image("first"), oci.image("second")
    oci.push_image(client, NAME, first, "moving")

    oci.push_image(client, NAME, second, "moving")

    response = oci.get_manifest(client, NAME, "moving")
    assert response["Docker-Content-Digest"] == second.manifest.digest
    assert oci.content(response) == second.manifest.data
    assert oci.get_manifest(client, NAME, first.manifest.digest).status_code == 200


def test_it_refuses_a_manifest_over_4_mib(client: Client) -> None:
    image = oci.image("large")
    for blob in image.blobs:
        oci.push_blob(client, NAME, blob)
    padding = {"org.example.padding": "x" * (4 * 1024 * 1024)}
    manifest = oci.image_manifest(image.config, image.layers, annotations=padding)

    response = oci.put_manifest(client, NAME, "large", manifest)

    oci.assert_error(response, 413, "MANIFEST_INVALID", "SIZE_INVALID")


def test_it_pushes_an_index_after_its_manifests(client: Client) -> None:
    children = [oci.image("amd64"), oci.image("arm64")]
    for child in children:
        oci.push_image(client, NAME, child)
    index = oci.image_index([child.manifest for child in children])

    response = oci.put_manifest(client, NAME, "multi", index)

    assert_manifest_created(client, response, index)


def test_it_refuses_an_index_before_its_manifests_unless_sparse(client: Client, settings: Any) -> None:
    settings.CROW_SPARSE_MANIFESTS = "none"  # the default accepts it: tests/test_sparse_manifests.py
    children = [oci.image("amd64"), oci.image("arm64")]
    oci.push_image(client, NAME, children[0])
    index = oci.image_index([child.manifest for child in children])

    response = oci.put_manifest(client, NAME, "multi", index)

    oci.assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("subject_pushed", [True, False], ids=["present", "missing"])
def test_it_answers_the_subject_of_a_manifest(client: Client, subject_pushed: bool) -> None:
    subject = oci.image("subject")
    if subject_pushed:
        oci.push_image(client, NAME, subject)
    oci.push_blob(client, NAME, oci.EMPTY_CONFIG)
    referrer = oci.image_manifest(
        oci.EMPTY_CONFIG, artifact_type="application/vnd.example.sbom", subject=subject.manifest
    )

    response = oci.put_manifest(client, NAME, referrer.digest, referrer)

    assert_manifest_created(client, response, referrer)
    assert response["OCI-Subject"] == subject.manifest.digest


# --- Names and references ---------------------------------------------------------

BAD_NAMES = [
    *("Bad_Name", "a/../b", "-leading", "trailing-", "a//b"),
    pytest.param("a" * 256, id="256-characters"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize(
    ("method", "route"), [("POST", "blobs/uploads/"), ("GET", "manifests/latest"), ("GET", "tags/list")]
)
def test_it_refuses_an_invalid_name(client: Client, name: str, method: str, route: str) -> None:
    response = client.generic(method, f"/v2/{name}/{route}")

    oci.assert_error(response, 400, "NAME_INVALID")


@pytest.mark.parametrize("tag", [".hidden", "-dash", "a" * 129, "with+plus"])
def test_it_refuses_an_invalid_tag(client: Client, tag: str) -> None:
    image = oci.image("bad-tag")
    for blob in image.blobs:
        oci.push_blob(client, NAME, blob)

    response = oci.put_manifest(client, NAME, tag, image.manifest)

    oci.assert_error(response, 400, "TAG_INVALID", "MANIFEST_INVALID")
