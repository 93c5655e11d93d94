"""The operator's admin: browse repositories, tags and manifests; delete a tag; touch nothing else."""

import pytest

from registry.models import Blob, Manifest, Repository, Tag
from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"


@pytest.fixture
def image(client) -> oci.Image:
    pushed = oci.image("admin")
    oci.push_image(client, NAME, pushed, "v1")
    return pushed


def test_it_lists_repositories_with_their_counts(admin_client, image) -> None:
    response = admin_client.get("/admin/registry/repository/")
    assert response.status_code == 200
    assert NAME in response.content.decode()


def test_it_shows_a_repository_with_its_tags(admin_client, image) -> None:
    repository = Repository.objects.get(name=NAME)
    page = admin_client.get(f"/admin/registry/repository/{repository.pk}/change/").content.decode()
    assert "v1" in page
    assert image.manifest.digest in page


def test_it_shows_a_manifest_as_pretty_json(admin_client, image) -> None:
    manifest = Manifest.objects.get(digest=image.manifest.digest)
    page = admin_client.get(f"/admin/registry/manifest/{manifest.pk}/change/").content.decode()
    assert image.layers[0].digest in page
    assert "&quot;schemaVersion&quot;: 2" in page


def test_it_deletes_a_tag_and_keeps_the_manifest(admin_client, client, image) -> None:
    tag = Tag.objects.get(name="v1")
    response = admin_client.post(f"/admin/registry/tag/{tag.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    oci.assert_error(oci.get_manifest(client, NAME, "v1"), 404, "MANIFEST_UNKNOWN")
    assert oci.get_manifest(client, NAME, image.manifest.digest).status_code == 200


def test_it_lets_nobody_edit_content_or_delete_blobs(admin_client, image) -> None:
    blob = Blob.objects.first()
    assert admin_client.get("/admin/registry/manifest/add/").status_code == 403
    assert admin_client.get(f"/admin/registry/blob/{blob.pk}/delete/").status_code == 403
    tag = Tag.objects.get(name="v1")
    response = admin_client.post(f"/admin/registry/tag/{tag.pk}/change/", {"name": "hacked"})
    assert response.status_code == 403
    assert Tag.objects.get(pk=tag.pk).name == "v1"
