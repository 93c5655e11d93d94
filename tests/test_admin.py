"""The operator's console: find an image's size, layers, platforms and pull reference by clicking;
delete tags as the registry does; cancel uploads and free their storage; edit no content."""

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from registry.auth.models import PublicPattern
from registry.models import Blob, Manifest, Repository, Tag, Upload
from tests import consoleimages, oci

pytestmark = pytest.mark.django_db

NAME = "team/app"
HOST = "registry.example:5000"
SIZE = '<span class="crow-size" title="{exact} bytes">{human}</span>'


@pytest.fixture(autouse=True)
def _host(settings) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "registry.example"]


@pytest.fixture
def image(client) -> oci.Image:
    pushed = consoleimages.platform_image("admin")
    oci.push_image(client, NAME, pushed, "v1")
    return pushed


@pytest.fixture
def multi(client) -> consoleimages.MultiPlatform:
    pushed = consoleimages.multi_platform("multi")
    consoleimages.push_multi_platform(client, NAME, pushed, "1.0", "latest")
    return pushed


def page(admin_client: Client, url: str, status: int = 200) -> str:
    response = admin_client.get(url, HTTP_HOST=HOST)
    assert response.status_code == status, (url, response.status_code)
    return response.content.decode()


def repository_page(admin_client: Client, name: str = NAME, query: str = "") -> str:
    repository = Repository.objects.get(name=name)
    return page(admin_client, f"/admin/registry/tag/?repository__id__exact={repository.pk}{query}")


def test_it_redirects_the_front_page_to_the_console(client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_it_shows_totals_largest_repositories_and_latest_pushes(admin_client, client, image, multi) -> None:
    oci.push_image(client, "team/small", oci.image("small"), "v0")
    oci.start_upload(client, NAME)
    home = page(admin_client, "/admin/")
    found = re.findall(r'<div class="crow-total"><strong>(.*?)</strong>([^<]*)</div>', home)
    totals = {label: value for value, label in found}
    stored = sum(Blob.objects.values_list("size", flat=True))
    assert totals == {
        "repositories": "2",
        "tags": "4",
        "manifests": "5",
        "unique stored bytes": SIZE.format(exact=f"{stored:,}", human=f"{stored / 1024:.1f} KiB"),
        "uploads in progress": "1",
    }
    largest = re.search(r"Largest repositories.*?</table>", home, re.S).group(0)
    assert largest.index(NAME) < largest.index("team/small")
    latest = re.search(r"Latest pushes.*?</table>", home, re.S).group(0)
    assert "team/small</a>:v0" in latest
    assert f"{HOST}/team/small:v0" in latest
    assert "linux/amd64, linux/arm64/v8" in latest


def test_it_lists_repositories_with_visibility_tags_size_and_last_push(
    admin_client, client, image, multi, settings
) -> None:
    PublicPattern.objects.create(pattern="team/*")
    oci.push_image(client, "private/thing", oci.image("thing"), "v1")
    settings.CROW_AUTH_DISABLED = False
    listing = page(admin_client, "/admin/registry/repository/")
    rows = dict(
        re.findall(
            r'<td class="field-repository"><a [^>]*>([a-z/]+)</a></td>'
            r'<td class="field-visibility">([^<]+)</td>',
            listing,
            re.S,
        )
    )
    assert rows == {NAME: "public", "private/thing": "private"}
    stored = sum(Blob.objects.filter(repositories__name=NAME).values_list("size", flat=True))
    assert f'title="{stored:,} bytes">{stored / 1024:.1f} KiB</span>' in listing
    assert '<td class="field-tags">3</td>' in listing
    assert "Select repository to change" not in listing and "<h1>Repositories</h1>" in listing


def test_it_sorts_repositories_by_size_and_by_last_push(admin_client, client) -> None:
    oci.push_image(client, "team/big", consoleimages.platform_image("big"), "v1")
    oci.push_image(client, "team/tiny", oci.image("tiny"), "v1")
    oci.push_image(client, "team/later", oci.image("later"), "v1")
    by_size = page(admin_client, "/admin/registry/repository/?o=-3")
    assert by_size.index("team/big") < by_size.index("team/later")
    by_size_up = page(admin_client, "/admin/registry/repository/?o=3")
    assert by_size_up.index("team/big") > by_size_up.index("team/tiny")
    by_push = page(admin_client, "/admin/registry/repository/?o=-4")
    assert by_push.index("team/later") < by_push.index("team/tiny") < by_push.index("team/big")


def test_it_finds_repositories_by_name_and_by_digest_prefix(admin_client, client, image) -> None:
    other = oci.image("other")
    oci.push_image(client, "team/other", other, "v1")
    by_name = page(admin_client, "/admin/registry/repository/?q=othe")
    assert "team/other" in by_name and f">{NAME}<" not in by_name
    prefix = image.manifest.digest[: len("sha256:") + 10]
    by_digest = page(admin_client, f"/admin/registry/repository/?q={prefix}")
    assert f">{NAME}<" in by_digest and "team/other" not in by_digest
    bare = other.manifest.digest.removeprefix("sha256:")[:8]
    assert "team/other" in page(admin_client, f"/admin/registry/repository/?q={bare}")


def test_it_leads_from_a_repository_to_its_tags(admin_client, image) -> None:
    repository = Repository.objects.get(name=NAME)
    response = admin_client.get(f"/admin/registry/repository/{repository.pk}/change/")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/registry/tag/?repository__id__exact={repository.pk}"


def test_it_shows_a_repository_page_with_sizes_platforms_and_pull_references(
    admin_client, image, multi
) -> None:
    html = repository_page(admin_client)
    assert f"<h1>{NAME}</h1>" in html
    index_row = re.search(r"<tr>(?:(?!</tr>).)*>latest</a>.*?</tr>", html, re.S).group(0)
    index = Manifest.objects.get(digest=multi.index.digest)
    assert f'href="/admin/registry/manifest/{index.pk}/change/"' in index_row
    assert f'title="{multi.index.digest}">{multi.index.digest[:19]}</code>' in index_row
    assert '<td class="field-kind">index</td>' in index_row
    assert "linux/amd64, linux/arm64/v8" in index_row
    assert f'title="{multi.image_size:,} bytes"' in index_row
    assert f'value="{HOST}/{NAME}:latest"' in index_row
    assert f'value="{HOST}/{NAME}@{multi.index.digest}"' in index_row
    image_row = re.search(r"<tr>(?:(?!</tr>).)*>v1</a>.*?</tr>", html, re.S).group(0)
    assert '<td class="field-kind">image</td>' in image_row and "linux/amd64" in image_row
    assert f'title="{sum(blob.size for blob in image.blobs):,} bytes"' in image_row
    assert "visibility" in html and "public (open registry)" in html


def test_it_pages_a_repository_of_many_tags(admin_client, client, image) -> None:
    for number in range(60):
        oci.push_manifest(client, NAME, f"t{number:03}", image.manifest)
    first = repository_page(admin_client)
    assert ">t000</a>" in first and ">t049</a>" in first and ">t050</a>" not in first
    second = repository_page(admin_client, query="&p=2")
    assert ">t050</a>" in second and ">v1</a>" in second and ">t049</a>" not in second


def test_it_shows_an_index_with_its_children_and_platforms(admin_client, multi) -> None:
    index = Manifest.objects.get(digest=multi.index.digest)
    html = page(admin_client, f"/admin/registry/manifest/{index.pk}/change/")
    assert "change" not in re.search(r"<title>(.*?)</title>", html, re.S).group(1).lower()
    for child, platform in zip(multi.children, ("linux/amd64", "linux/arm64/v8"), strict=True):
        row = re.search(rf"<tr><td>{platform}</td>.*?</tr>", html, re.S).group(0)
        child_pk = Manifest.objects.get(digest=child.manifest.digest).pk
        assert f'href="/admin/registry/manifest/{child_pk}/change/"' in row
        assert f'title="{sum(b.size for b in child.blobs):,} bytes"' in row
    assert ">1.0 <" in html.replace("</li>", "") or "1.0" in html
    assert f'value="{HOST}/{NAME}@{multi.index.digest}"' in html
    assert "&quot;schemaVersion&quot;: 2," in html  # pretty-printed, read-only


def test_it_shows_an_image_config_and_layers(admin_client, multi) -> None:
    child = multi.children[1]
    manifest = Manifest.objects.get(digest=child.manifest.digest)
    html = page(admin_client, f"/admin/registry/manifest/{manifest.pk}/change/")
    assert "<dd>linux/arm64/v8</dd>" in html
    assert "<code>/usr/bin/app</code>" in html and "<code>--serve</code>" in html
    assert "<code>PATH=/usr/bin</code>" in html
    assert "org.opencontainers.image.source" in html and "3 steps" in html
    for blob in child.layers:
        blob_pk = Blob.objects.get(digest=blob.digest).pk
        assert f'href="/admin/registry/blob/{blob_pk}/change/"' in html
    assert 'title="3,000 bytes">2.9 KiB</span>' in html
    index_pk = Manifest.objects.get(digest=multi.index.digest).pk
    assert f'href="/admin/registry/manifest/{index_pk}/change/"' in html  # the index it is in


def test_it_groups_referrers_by_artifact_type_and_links_the_subject(admin_client, client, image) -> None:
    kinds = ("application/vnd.dev.cosign.simplesigning.v1+json", "application/spdx+json")
    referrers = [
        oci.image_manifest(
            oci.EMPTY_CONFIG, [oci.layer(f"ref-{n}")], subject=image.manifest, artifact_type=kind
        )
        for n, kind in enumerate((*kinds, kinds[1]))
    ]
    oci.push_blob(client, NAME, oci.EMPTY_CONFIG)
    for n, referrer in enumerate(referrers):
        oci.push_blob(client, NAME, oci.layer(f"ref-{n}"))
        oci.push_manifest(client, NAME, referrer.digest, referrer)
    subject = Manifest.objects.get(digest=image.manifest.digest)
    html = page(admin_client, f"/admin/registry/manifest/{subject.pk}/change/")
    assert f"<strong>{kinds[0]}</strong> (1)" in html
    assert f"<strong>{kinds[1]}</strong> (2)" in html
    signature = Manifest.objects.get(digest=referrers[0].digest)
    assert f'href="/admin/registry/manifest/{signature.pk}/change/"' in html
    signature_page = page(admin_client, f"/admin/registry/manifest/{signature.pk}/change/")
    assert f'href="/admin/registry/manifest/{subject.pk}/change/"' in signature_page


def test_it_shows_a_blob_with_its_media_type_and_users(admin_client, client, image) -> None:
    oci.push_image(client, "team/copy", image, "v1")
    blob = Blob.objects.get(digest=image.layers[0].digest)
    html = page(admin_client, f"/admin/registry/blob/{blob.pk}/change/")
    assert "2.9 KiB (3,000 bytes)" in html
    assert oci.OCI_LAYER in html
    assert ">team/copy</a>" in html and f">{NAME}</a>" in html
    assert html.count(image.manifest.digest) >= 2  # one manifest in each repository
    assert "Blob sha256:" in re.search(r"<title>(.*?)</title>", html, re.S).group(1)


def test_it_deletes_tags_in_bulk_as_the_registry_does(admin_client, client, multi, image) -> None:
    repository = Repository.objects.get(name=NAME)
    doomed = list(Tag.objects.filter(name__in=["1.0", "v1"]).values_list("pk", flat=True))
    url = f"/admin/registry/tag/?repository__id__exact={repository.pk}"
    form = {"action": "delete_selected", "_selected_action": doomed}
    confirmation = admin_client.post(url, form).content.decode()
    doomed_list = re.search(r'<ul id="crow-doomed-tags">(.*?)</ul>', confirmation, re.S).group(1)
    assert f"{NAME}:1.0" in doomed_list and f"{NAME}:v1" in doomed_list and "latest" not in doomed_list
    assert doomed_list.count("<li>") == 2 and "Repository blob" not in confirmation
    assert "<title>Delete tags |" in confirmation
    response = admin_client.post(url, {**form, "post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == url
    oci.assert_error(oci.get_manifest(client, NAME, "1.0"), 404, "MANIFEST_UNKNOWN")
    oci.assert_error(oci.get_manifest(client, NAME, "v1"), 404, "MANIFEST_UNKNOWN")
    assert oci.get_manifest(client, NAME, "latest").status_code == 200
    assert oci.get_manifest(client, NAME, image.manifest.digest).status_code == 200
    assert "2 tags" in page(admin_client, url)  # the success message, back on the list


def test_it_deletes_one_tag_and_keeps_the_manifest(admin_client, client, image) -> None:
    tag = Tag.objects.get(name="v1")
    confirmation = page(admin_client, f"/admin/registry/tag/{tag.pk}/delete/")
    assert image.manifest.digest in confirmation
    response = admin_client.post(f"/admin/registry/tag/{tag.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    oci.assert_error(oci.get_manifest(client, NAME, "v1"), 404, "MANIFEST_UNKNOWN")
    assert oci.get_manifest(client, NAME, image.manifest.digest).status_code == 200


def test_it_deletes_no_tag_when_the_registry_refuses_deletes(admin_client, client, image, settings) -> None:
    settings.CROW_DELETE_ENABLED = False
    tag = Tag.objects.get(name="v1")
    assert admin_client.post(f"/admin/registry/tag/{tag.pk}/delete/", {"post": "yes"}).status_code == 403
    response = admin_client.post(
        "/admin/registry/tag/", {"action": "delete_selected", "_selected_action": [tag.pk], "post": "yes"}
    )
    assert Tag.objects.filter(pk=tag.pk).exists(), response.status_code
    assert oci.get_manifest(client, NAME, "v1").status_code == 200


def test_it_cancels_an_upload_and_frees_its_storage(admin_client, client, blob_root: Path) -> None:
    url = oci.start_upload(client, NAME)
    assert oci.patch_chunk(client, url, b"x" * 5000, 0).status_code == 202
    upload = Upload.objects.get()
    stored = [path for path in blob_root.rglob("*") if path.is_file() and upload.id.hex in str(path)]
    assert stored and sum(path.stat().st_size for path in stored) == 5000
    listing = page(admin_client, "/admin/registry/upload/")
    assert 'title="5,000 bytes">4.9 KiB</span>' in listing and NAME in listing
    response = admin_client.post(
        "/admin/registry/upload/", {"action": "cancel_uploads", "_selected_action": [str(upload.pk)]}
    )
    assert response.status_code == 302
    assert not Upload.objects.exists()
    assert not any(path.exists() for path in stored)
    oci.assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")


def test_it_lets_nobody_edit_content_or_delete_blobs(admin_client, image) -> None:
    blob = Blob.objects.first()
    manifest = Manifest.objects.get(digest=image.manifest.digest)
    assert admin_client.get("/admin/registry/manifest/add/").status_code == 403
    assert admin_client.get(f"/admin/registry/blob/{blob.pk}/delete/").status_code == 403
    assert admin_client.get(f"/admin/registry/manifest/{manifest.pk}/delete/").status_code == 403
    tag = Tag.objects.get(name="v1")
    response = admin_client.post(f"/admin/registry/tag/{tag.pk}/change/", {"name": "hacked"})
    assert response.status_code == 403
    assert Tag.objects.get(pk=tag.pk).name == "v1"
    html = page(admin_client, f"/admin/registry/manifest/{manifest.pk}/change/")
    assert 'name="_save"' not in html and "<textarea" not in html


def test_it_shows_staff_only_what_their_permissions_allow(client, image) -> None:
    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_tag"))
    viewer_client = Client()
    viewer_client.force_login(viewer)
    repository = Repository.objects.get(name=NAME)
    tags = viewer_client.get(f"/admin/registry/tag/?repository__id__exact={repository.pk}").content.decode()
    assert ">v1</a>" in tags
    assert "delete_selected" not in tags
    assert viewer_client.get("/admin/registry/repository/").status_code == 403
    tag = Tag.objects.get(name="v1")
    assert viewer_client.post(f"/admin/registry/tag/{tag.pk}/delete/", {"post": "yes"}).status_code == 403
    assert oci.get_manifest(client, NAME, "v1").status_code == 200


def test_it_links_a_long_section_to_the_whole_list(admin_client, client, image) -> None:
    for number in range(101):
        oci.push_manifest(client, NAME, f"alias{number:03}", image.manifest)
    manifest = Manifest.objects.get(digest=image.manifest.digest)
    html = page(admin_client, f"/admin/registry/manifest/{manifest.pk}/change/")
    assert "alias099" in html and "alias100" not in html
    link = re.search(r'the first 100 are shown: <a href="([^"]+)">see them all</a>', html).group(1)
    whole = page(admin_client, link.replace("&amp;", "&"))
    assert ">alias000</a>" in whole and "102 tags" in whole  # every tag on the manifest, and no other


def test_it_counts_a_link_at_its_blob_size_whoever_writes_it(client, image) -> None:
    from registry.models import RepositoryBlob

    pushed = dict(RepositoryBlob.objects.values_list("blob__digest", "size"))
    assert pushed == {blob.digest: blob.size for blob in image.blobs}
    other = Repository.objects.create(name="team/by-hand")
    RepositoryBlob.objects.create(repository=other, blob=Blob.objects.get(digest=image.layers[0].digest))
    assert RepositoryBlob.objects.get(repository=other).size == image.layers[0].size
