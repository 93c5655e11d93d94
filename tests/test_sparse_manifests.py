"""Sparse manifests (``CROW_SPARSE_MANIFESTS``): which absent references each setting accepts, that absent
content is never served, that pushing it later links it, and that gc, verify, the admin and backups know it.
"""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from registry.backup.restore import restore
from registry.backup.snapshot import backup
from registry.gc import collect as gc
from registry.gc.verify import verify
from registry.models import AbsentReference, Blob, Manifest, ManifestBlob, ManifestChild
from tests import backups, oci

pytestmark = pytest.mark.django_db

NAME = "team/app"
AMD, ARM = oci.image("amd64"), oci.image("arm64")
INDEX = oci.image_index([AMD.manifest, ARM.manifest])


def collect(**options: Any) -> gc.GcReport:
    return gc.collect(gc.GcOptions(grace_period=timedelta(0), **options))


def push_index_with_an_absent_child(client: Client) -> Any:
    """amd64 pushed, arm64 not: what copying one platform of two with preserved digests pushes."""
    oci.push_image(client, NAME, AMD)
    return oci.put_manifest(client, NAME, "multi", INDEX)


def push_image_with_an_absent_layer(client: Client) -> Any:
    oci.push_blob(client, NAME, AMD.config)
    return oci.put_manifest(client, NAME, "v1", AMD.manifest)


@pytest.mark.parametrize(
    ("mode", "index_accepted", "image_accepted"),
    [("indexes", True, False), ("all", True, True), ("none", False, False)],
)
@pytest.mark.parametrize("case", ["index with absent child", "image with absent layer"])
def test_each_setting_accepts_what_it_says(
    client: Client, settings: Any, mode: str, index_accepted: bool, image_accepted: bool, case: str
) -> None:
    settings.CROW_SPARSE_MANIFESTS = mode
    if case == "index with absent child":
        response, accepted, pushed, absent = (
            push_index_with_an_absent_child(client),
            index_accepted,
            INDEX,
            ARM.manifest,
        )
    else:
        response, accepted, pushed, absent = (
            push_image_with_an_absent_layer(client),
            image_accepted,
            AMD.manifest,
            AMD.layers[0],
        )

    if accepted:
        assert response.status_code == 201, oci.content(response)
        assert response["Docker-Content-Digest"] == pushed.digest
        assert oci.content(oci.get_manifest(client, NAME, pushed.digest)) == pushed.data
        assert list(AbsentReference.objects.values_list("digest", flat=True)) == [absent.digest]
    else:
        oci.assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
        assert oci.document(response)["errors"][0]["detail"] == {"missing": [absent.digest]}
        assert not Manifest.objects.filter(digest=pushed.digest).exists()


def test_the_default_accepts_an_index_with_absent_children_only(client: Client) -> None:
    oci.assert_error(push_image_with_an_absent_layer(client), 400, "MANIFEST_BLOB_UNKNOWN")
    assert push_index_with_an_absent_child(client).status_code == 201


def test_an_absent_child_is_never_served(client: Client) -> None:
    push_index_with_an_absent_child(client)
    oci.assert_error(oci.get_manifest(client, NAME, ARM.manifest.digest), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{NAME}/manifests/{ARM.manifest.digest}").status_code == 404
    assert oci.content(oci.get_manifest(client, NAME, AMD.manifest.digest)) == AMD.manifest.data


def test_pushing_the_child_later_links_it_and_gc_keeps_it(client: Client) -> None:
    push_index_with_an_absent_child(client)
    oci.push_image(client, NAME, ARM)

    index = Manifest.objects.get(digest=INDEX.digest)
    children = set(ManifestChild.objects.filter(parent=index).values_list("child__digest", flat=True))
    assert children == {AMD.manifest.digest, ARM.manifest.digest}
    assert not AbsentReference.objects.exists()
    report = collect(untagged=True)
    assert (report.manifests, report.blobs, report.failed) == (0, 0, [])
    assert oci.content(oci.get_manifest(client, NAME, ARM.manifest.digest)) == ARM.manifest.data


def test_deleting_a_child_makes_it_absent_in_its_index_until_it_is_pushed_again(client: Client) -> None:
    oci.push_image(client, NAME, AMD)
    oci.push_image(client, NAME, ARM)
    assert oci.put_manifest(client, NAME, "multi", INDEX).status_code == 201

    assert client.delete(f"/v2/{NAME}/manifests/{ARM.manifest.digest}").status_code == 202

    oci.assert_error(oci.get_manifest(client, NAME, ARM.manifest.digest), 404, "MANIFEST_UNKNOWN")
    assert oci.content(oci.get_manifest(client, NAME, "multi")) == INDEX.data
    index = Manifest.objects.get(digest=INDEX.digest)
    assert list(AbsentReference.objects.values_list("manifest", "digest", "kind")) == [
        (index.id, ARM.manifest.digest, AbsentReference.MANIFEST)
    ]
    oci.push_image(client, NAME, ARM)
    children = set(ManifestChild.objects.filter(parent=index).values_list("child__digest", flat=True))
    assert children == {AMD.manifest.digest, ARM.manifest.digest}
    assert not AbsentReference.objects.exists()


def test_gc_keeps_a_sparse_index_and_its_present_child(client: Client) -> None:
    push_index_with_an_absent_child(client)
    report = collect(untagged=True)
    assert (report.manifests, report.blobs, report.failed) == (0, 0, [])
    assert set(Manifest.objects.values_list("digest", flat=True)) == {INDEX.digest, AMD.manifest.digest}


def test_gc_deletes_an_untagged_sparse_index_with_its_absent_references(client: Client) -> None:
    push_index_with_an_absent_child(client)
    client.delete(f"/v2/{NAME}/manifests/multi")
    report = collect(untagged=True)
    assert (report.manifests, report.failed) == (2, [])  # the index, then its present child
    assert not Manifest.objects.exists()
    assert not AbsentReference.objects.exists()


def test_gc_follows_an_absent_reference_whose_child_arrived_without_being_linked(client: Client) -> None:
    # The child's push and the index's crossed: the child is in, the index still names it absent.
    push_index_with_an_absent_child(client)
    oci.push_image(client, NAME, ARM)
    index = Manifest.objects.get(digest=INDEX.digest)
    ManifestChild.objects.filter(parent=index, child__digest=ARM.manifest.digest).delete()
    AbsentReference.objects.create(manifest=index, digest=ARM.manifest.digest, kind=AbsentReference.MANIFEST)

    assert collect(untagged=True).manifests == 0
    assert Manifest.objects.filter(digest=ARM.manifest.digest).exists()


def test_gc_keeps_a_layer_pushed_after_the_manifest_that_named_it(client: Client, settings: Any) -> None:
    settings.CROW_SPARSE_MANIFESTS = "all"
    push_image_with_an_absent_layer(client)
    oci.assert_error(client.get(f"/v2/{NAME}/blobs/{AMD.layers[0].digest}"), 404, "BLOB_UNKNOWN")
    oci.push_blob(client, NAME, AMD.layers[0])
    assert not ManifestBlob.objects.filter(blob__digest=AMD.layers[0].digest).exists()

    assert collect().blobs == 0
    assert oci.content(client.get(f"/v2/{NAME}/blobs/{AMD.layers[0].digest}")) == AMD.layers[0].data

    assert client.delete(f"/v2/{NAME}/manifests/{AMD.manifest.digest}").status_code == 202
    assert collect().blobs == 2  # nothing names the config or the layer any more


def test_verify_does_not_report_absent_references(client: Client, settings: Any) -> None:
    settings.CROW_SPARSE_MANIFESTS = "all"
    push_index_with_an_absent_child(client)
    oci.push_blob(client, "team/other", ARM.config)
    oci.put_manifest(client, "team/other", "v1", ARM.manifest)
    report = verify()
    assert report.problems == []
    assert report.blobs == Blob.objects.count()


def test_the_admin_marks_absent_references(admin_client: Client, client: Client, settings: Any) -> None:
    settings.CROW_SPARSE_MANIFESTS = "all"
    push_index_with_an_absent_child(client)
    index = Manifest.objects.get(digest=INDEX.digest)
    page = admin_client.get(f"/admin/registry/manifest/{index.pk}/change/").content.decode()
    assert f"manifest {ARM.manifest.digest}: <strong>absent</strong>" in page

    oci.push_blob(client, NAME, ARM.config)
    oci.push_manifest(client, NAME, "arm", ARM.manifest)
    arm = Manifest.objects.get(digest=ARM.manifest.digest)
    page = admin_client.get(f"/admin/registry/manifest/{arm.pk}/change/").content.decode()
    assert f"blob {ARM.layers[0].digest}: <strong>absent</strong>" in page
    oci.push_blob(client, NAME, ARM.layers[0])
    page = admin_client.get(f"/admin/registry/manifest/{arm.pk}/change/").content.decode()
    assert f"blob {ARM.layers[0].digest}: <strong>present now</strong>" in page


@pytest.mark.all_backends
def test_backup_and_restore_keep_absent_references(client: Client, tmp_path: Path) -> None:
    push_index_with_an_absent_child(client)
    before = backups.seen(client)
    dest = tmp_path / "backup"
    backup(str(dest))
    metadata = json.loads((dest / "crow-backup.json").read_text())
    assert metadata["version"] == 2
    backups.empty_installation()

    restore(str(dest))

    assert backups.seen(client) == before
    assert list(AbsentReference.objects.values_list("digest", flat=True)) == [ARM.manifest.digest]
    oci.push_image(client, NAME, ARM)
    index = Manifest.objects.get(digest=INDEX.digest)
    assert ManifestChild.objects.filter(parent=index).count() == 2


def test_a_backup_without_sparse_manifests_stays_version_1(client: Client, tmp_path: Path) -> None:
    oci.push_image(client, NAME, AMD, "v1")
    backup(str(tmp_path / "backup"))
    assert json.loads((tmp_path / "backup" / "crow-backup.json").read_text())["version"] == 1
