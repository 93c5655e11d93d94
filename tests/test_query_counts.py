"""The hot reads cost one query each: a pull is bound by the network, not the database."""

import pytest

from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"


@pytest.fixture
def image(client) -> oci.Image:
    pushed = oci.image("queries")
    oci.push_image(client, NAME, pushed, "v1")
    return pushed


def test_it_gets_a_manifest_by_tag_in_one_query(client, image, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert oci.get_manifest(client, NAME, "v1").status_code == 200


def test_it_gets_a_manifest_by_digest_in_one_query(client, image, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert client.head(f"/v2/{NAME}/manifests/{image.manifest.digest}").status_code == 200


def test_it_answers_a_blob_head_in_one_query(client, image, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert client.head(f"/v2/{NAME}/blobs/{image.layers[0].digest}").status_code == 200


def test_it_starts_a_blob_get_in_one_query(client, image, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        response = client.get(f"/v2/{NAME}/blobs/{image.layers[0].digest}")
    assert oci.content(response) == image.layers[0].data


def test_it_appends_a_chunk_in_three_queries(client, django_assert_num_queries) -> None:
    url = oci.start_upload(client, NAME)
    # Read the session, claim it, store the new offset and release the claim in one UPDATE.
    with django_assert_num_queries(3):
        assert oci.patch_chunk(client, url, b"chunk", 0).status_code == 202
