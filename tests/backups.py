"""Registry content for the backup and restore tests: push it, read back what a client sees, empty it all.

``populate`` pushes, through Django's test client, what a backup must carry:
two repositories sharing blobs, two tags on one manifest, a two-platform
index, a referrer, an image known only by digest, a manifest under a sha512
digest and a blob larger than one S3 part. ``seen`` is everything a client
reads back (manifest bytes, media types and digests, tags, blobs, referrers),
to compare before and after a restore.
"""

import hashlib
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from registry.auth.models import Grant, PublicPattern, Robot
from registry.models import Blob, Manifest, Repository, RetentionRule, Tag, Upload
from registry.storage import blob_store
from tests import oci, ocilayout

MiB = 1024 * 1024
SBOM = "application/vnd.example.sbom.v1+json"


def populate(client: Client) -> dict[str, oci.Blob]:
    """Push the content; returns its top-level manifests by a short name."""
    first = oci.image("first", layer_count=2)
    second = oci.image("second")
    big_config, big_layer = oci.config("big"), oci.layer("big", 6 * MiB + 7)  # over one S3 part
    big = oci.Image(big_config, (big_layer,), oci.image_manifest(big_config, [big_layer]))
    amd, arm = oci.image("amd64"), oci.image("arm64")
    index = oci.image_index([amd.manifest, arm.manifest])
    sbom = oci.image_manifest(
        oci.EMPTY_CONFIG, [oci.layer("sbom")], subject=first.manifest, artifact_type=SBOM
    )

    oci.push_image(client, "team/app", first, "v1")
    oci.push_manifest(client, "team/app", "latest", first.manifest)
    oci.push_image(client, "team/app", second, "v2")
    oci.push_image(client, "team/app", big, "big")
    for platform in (amd, arm):
        oci.push_image(client, "team/app", platform)
    oci.push_manifest(client, "team/app", "multi", index)
    oci.push_blob(client, "team/app", oci.EMPTY_CONFIG)
    oci.push_blob(client, "team/app", oci.layer("sbom"))
    oci.push_manifest(client, "team/app", sbom.digest, sbom)

    oci.push_image(client, "team/other", first, "v1")  # the same blobs, stored once
    untagged = oci.image("untagged")
    oci.push_image(client, "team/other", untagged)
    sha512 = oci.image_manifest(second.config, second.layers, annotations={"digest": "sha512"})
    for blob in second.blobs:
        oci.push_blob(client, "team/other", blob)
    sha512_digest = "sha512:" + hashlib.sha512(sha512.data).hexdigest()
    oci.push_manifest(client, "team/other", sha512_digest, sha512)
    return {"first": first.manifest, "second": second.manifest, "index": index, "sbom": sbom}


def push_layout(client: Client, name: str, layout: Path, tag: str) -> str:
    """Push ``layout:tag`` (an image or an index) as a client would; returns its digest."""

    def push(digest: str) -> oci.Blob:
        manifest = oci.Blob(ocilayout.blob_path(layout, digest).read_bytes())
        document = manifest.document()
        manifest = oci.Blob(manifest.data, document["mediaType"])
        if document["mediaType"] == oci.OCI_INDEX:
            for child in document["manifests"]:
                push(child["digest"])
        else:
            for descriptor in (document["config"], *document["layers"]):
                data = ocilayout.blob_path(layout, descriptor["digest"]).read_bytes()
                oci.push_blob(client, name, oci.Blob(data, descriptor["mediaType"]))
        oci.push_manifest(client, name, digest, manifest)
        return manifest

    digest = ocilayout.tagged(layout, tag)
    oci.push_manifest(client, name, tag, push(digest))
    return digest


def seen(client: Client) -> dict[str, Any]:
    """What clients read from the registry: every manifest, tag, blob and referrer, byte for byte."""
    view: dict[str, Any] = {}
    for repository in Repository.objects.order_by("name"):
        name = repository.name
        tags = oci.document(client.get(f"/v2/{name}/tags/list"))["tags"]
        view[f"{name} tags"] = tags
        for tag in tags:
            response = oci.get_manifest(client, name, tag)
            view[f"{name}:{tag}"] = response["Docker-Content-Digest"]
        for digest in Manifest.objects.filter(repository=repository).values_list("digest", flat=True):
            response = oci.get_manifest(client, name, digest)
            assert response.status_code == 200, (name, digest)
            view[f"{name}@{digest}"] = (
                response["Content-Type"],
                response["Docker-Content-Digest"],
                oci.content(response),
            )
            referrers = oci.document(client.get(f"/v2/{name}/referrers/{digest}"))["manifests"]
            if referrers:
                view[f"{name}@{digest} referrers"] = referrers
        for digest in repository.blobs.values_list("digest", flat=True):
            response = client.get(f"/v2/{name}/blobs/{digest}")
            assert response.status_code == 200, (name, digest, response.status_code)
            view[f"{name} blob {digest}"] = oci.content(response)
    return view


def add_accounts() -> None:
    """Users, a group, grants, a public pattern, a robot and a retention rule."""
    users = get_user_model()
    alice = users.objects.create_user("alice", email="alice@example.com", password="alice's secret")
    admin = users.objects.create_superuser("root", email="", password="root's secret")
    group = Group.objects.create(name="developers")
    alice.groups.add(group)
    Grant.objects.create(pattern="alice/*", user=alice, **Grant.flags({"pull", "push", "delete"}))
    Grant.objects.create(pattern="team/*", group=group, **Grant.flags({"pull"}))
    PublicPattern.objects.create(pattern="public/*")
    Robot.objects.create(
        name="ci", owner=admin, patterns="team/*", secret_hash="ab" * 32, **Robot.flags({"pull", "push"})
    )
    RetentionRule.objects.create(pattern="team/*", tag_pattern="pr-.*", keep_latest=5, protected_tags="v.*")


def accounts() -> dict[str, Any]:
    """The access rows, as comparable values."""
    return {
        "users": sorted(
            get_user_model().objects.values_list("username", "password", "email", "is_staff", "is_superuser")
        ),
        "memberships": sorted(get_user_model().objects.values_list("username", "groups__name")),
        "grants": sorted(
            Grant.objects.values_list("pattern", "user__username", "group__name", "may_pull", "may_push")
        ),
        "public": list(PublicPattern.objects.values_list("pattern", flat=True)),
        "robots": list(Robot.objects.values_list("name", "owner__username", "secret_hash", "may_push")),
        "rules": list(RetentionRule.objects.values_list("pattern", "tag_pattern", "keep_latest")),
    }


def empty_installation() -> None:
    """Delete every stored blob and every row: what a fresh database and store hold."""
    store = blob_store()
    for key in Blob.objects.values_list("key", flat=True):
        store.delete(key)
    Tag.objects.all().delete()
    Manifest.objects.all().delete()
    Upload.objects.all().delete()
    Repository.objects.all().delete()
    Blob.objects.all().delete()
    for model in (Robot, Grant, PublicPattern, RetentionRule, get_user_model(), Group):
        model.objects.all().delete()
