"""The content discovery workflow of the OCI distribution-spec conformance suite."""

from typing import Any

import pytest
from django.test import Client

from tests import oci

pytestmark = [pytest.mark.django_db, pytest.mark.all_backends]

NAME = "conformance/discovery"
TAGS = ["v2", "alpha", "v10", "beta", "v1"]
SORTED_TAGS = ["alpha", "beta", "v1", "v10", "v2"]
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


@pytest.fixture
def tagged(client: Client) -> oci.Image:
    image = oci.image("discovery")
    oci.push_image(client, NAME, image)
    for tag in TAGS:
        oci.push_manifest(client, NAME, tag, image.manifest)
    return image


def list_tags(client: Client, query: str = "") -> Any:
    response = client.get(f"/v2/{NAME}/tags/list{query}")
    assert response.status_code == 200, oci.content(response)
    assert response["Content-Type"].split(";")[0] == "application/json"
    return response


# --- Tags -------------------------------------------------------------------------


def test_it_lists_tags_in_lexical_order(client: Client, tagged: oci.Image) -> None:
    response = list_tags(client)

    assert oci.document(response) == {"name": NAME, "tags": SORTED_TAGS}
    assert oci.next_link(response) is None


def test_it_limits_the_tags_with_n(client: Client, tagged: oci.Image) -> None:
    response = list_tags(client, "?n=2")

    assert oci.document(response)["tags"] == SORTED_TAGS[:2]
    link = oci.next_link(response)
    assert link is not None
    assert oci.path_of(link) == f"/v2/{NAME}/tags/list"
    assert oci.query_of(link) == {"n": ["2"], "last": ["beta"]}


def test_it_follows_the_link_to_the_last_page(client: Client, tagged: oci.Image) -> None:
    pages = []
    url: str | None = f"/v2/{NAME}/tags/list?n=2"
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(oci.document(response)["tags"])
        url = oci.next_link(response)

    assert pages == [SORTED_TAGS[0:2], SORTED_TAGS[2:4], SORTED_TAGS[4:]]


def test_it_starts_after_last(client: Client, tagged: oci.Image) -> None:
    response = list_tags(client, "?last=beta")

    assert oci.document(response)["tags"] == SORTED_TAGS[2:]


def test_it_combines_n_and_last(client: Client, tagged: oci.Image) -> None:
    response = list_tags(client, "?n=2&last=alpha")

    assert oci.document(response)["tags"] == ["beta", "v1"]
    assert oci.query_of(oci.next_link(response) or "") == {"n": ["2"], "last": ["v1"]}


def test_it_lists_no_tags_of_a_repository_without_any(client: Client) -> None:
    oci.push_blob(client, NAME, oci.layer("untagged"))

    response = list_tags(client)

    assert oci.document(response) == {"name": NAME, "tags": []}


def test_it_answers_name_unknown_for_the_tags_of_an_unknown_repository(client: Client) -> None:
    response = client.get("/v2/conformance/nowhere/tags/list")

    oci.assert_error(response, 404, "NAME_UNKNOWN")


# --- Referrers --------------------------------------------------------------------


@pytest.fixture
def subject(client: Client) -> oci.Image:
    image = oci.image("subject")
    oci.push_image(client, NAME, image, "latest")
    oci.push_blob(client, NAME, oci.EMPTY_CONFIG)
    return image


def push_referrers(client: Client, subject: oci.Blob) -> dict[str, oci.Blob]:
    """Three referrers of ``subject``: its artifact type said three ways."""
    sbom_layer = oci.layer("sbom")
    sbom_config = oci.Blob(b'{"sbom": true}', SBOM)
    for blob in (sbom_layer, sbom_config):
        oci.push_blob(client, NAME, blob)
    referrers = {
        "by-artifact-type": oci.image_manifest(
            oci.EMPTY_CONFIG,
            [sbom_layer],
            subject=subject,
            artifact_type=SBOM,
            annotations={"org.example.kind": "artifactType"},
        ),
        "by-config": oci.image_manifest(
            sbom_config,
            [sbom_layer],
            subject=subject,
            annotations={"org.example.kind": "config"},
        ),
        "index": oci.image_index(
            [],
            subject=subject,
            artifact_type=SIGNATURE,
            annotations={"org.example.kind": "index"},
        ),
    }
    for referrer in referrers.values():
        response = oci.push_manifest(client, NAME, referrer.digest, referrer)
        assert response["OCI-Subject"] == subject.digest
    return referrers


def expected_descriptor(referrer: oci.Blob) -> dict[str, Any]:
    document = referrer.document()
    artifact_type = document.get("artifactType") or document["config"]["mediaType"]
    return referrer.descriptor(artifactType=artifact_type, annotations=document["annotations"])


def referrers_of(client: Client, digest: str, query: str = "") -> Any:
    response = client.get(f"/v2/{NAME}/referrers/{digest}{query}")
    assert response.status_code == 200, oci.content(response)
    assert response["Content-Type"] == oci.OCI_INDEX
    return response


def listed(response: Any) -> list[dict[str, Any]]:
    index = oci.document(response)
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == oci.OCI_INDEX
    keys = ("mediaType", "digest", "size", "artifactType", "annotations")
    entries = [{key: entry.get(key) for key in keys} for entry in index["manifests"]]
    return sorted(entries, key=lambda entry: entry["digest"])


def by_digest(referrers: list[oci.Blob]) -> list[dict[str, Any]]:
    return sorted(map(expected_descriptor, referrers), key=lambda entry: entry["digest"])


def test_it_lists_the_referrers_of_a_manifest(client: Client, subject: oci.Image) -> None:
    referrers = push_referrers(client, subject.manifest)

    response = referrers_of(client, subject.manifest.digest)

    assert listed(response) == by_digest(list(referrers.values()))


def test_it_filters_referrers_by_artifact_type(client: Client, subject: oci.Image) -> None:
    referrers = push_referrers(client, subject.manifest)

    response = referrers_of(client, subject.manifest.digest, f"?artifactType={SBOM}")

    assert response["OCI-Filters-Applied"] == "artifactType"
    expected = [referrers["by-artifact-type"], referrers["by-config"]]
    assert listed(response) == by_digest(expected)


def test_it_lists_no_referrers_of_a_manifest_without_any(client: Client, subject: oci.Image) -> None:
    response = referrers_of(client, subject.manifest.digest)

    assert listed(response) == []


def test_it_lists_no_referrers_of_an_unknown_digest(client: Client, subject: oci.Image) -> None:
    response = referrers_of(client, oci.UNKNOWN_DIGEST)

    assert listed(response) == []


def test_it_lists_the_referrers_of_a_subject_not_pushed(client: Client, subject: oci.Image) -> None:
    missing = oci.image("missing-subject").manifest
    referrer = oci.image_manifest(
        oci.EMPTY_CONFIG,
        subject=missing,
        artifact_type=SIGNATURE,
        annotations={"org.example.kind": "dangling"},
    )
    response = oci.push_manifest(client, NAME, referrer.digest, referrer)
    assert response["OCI-Subject"] == missing.digest

    assert listed(referrers_of(client, missing.digest)) == by_digest([referrer])


def test_it_keeps_referrers_to_their_repository(client: Client, subject: oci.Image) -> None:
    push_referrers(client, subject.manifest)
    other = "conformance/elsewhere"
    oci.push_image(client, other, subject)

    response = client.get(f"/v2/{other}/referrers/{subject.manifest.digest}")

    assert response.status_code == 200
    assert listed(response) == []


# --- Catalog ----------------------------------------------------------------------

REPOSITORIES = ["cat/c", "cat/a", "cat/b"]


@pytest.fixture
def repositories(client: Client) -> None:
    for name in REPOSITORIES:
        oci.push_image(client, name, oci.image(name), "latest")


def catalog(client: Client, url: str = "/v2/_catalog") -> Any:
    response = client.get(url)
    assert response.status_code == 200, oci.content(response)
    assert response["Content-Type"].split(";")[0] == "application/json"
    return response


def test_it_lists_repositories(client: Client, repositories: None) -> None:
    response = catalog(client)

    assert oci.document(response) == {"repositories": ["cat/a", "cat/b", "cat/c"]}
    assert oci.next_link(response) is None


def test_it_pages_the_catalog(client: Client, repositories: None) -> None:
    response = catalog(client, "/v2/_catalog?n=2")

    assert oci.document(response) == {"repositories": ["cat/a", "cat/b"]}
    link = oci.next_link(response)
    assert link is not None
    assert oci.path_of(link) == "/v2/_catalog"
    assert oci.query_of(link) == {"n": ["2"], "last": ["cat/b"]}
    assert oci.document(catalog(client, link)) == {"repositories": ["cat/c"]}


def test_it_starts_the_catalog_after_last(client: Client, repositories: None) -> None:
    response = catalog(client, "/v2/_catalog?last=cat/a")

    assert oci.document(response) == {"repositories": ["cat/b", "cat/c"]}
