"""Every console page runs as many queries for 300 rows as for 3: lists page, sections stop, sums are SQL.

Each test measures a page, adds rows to what it shows, and measures again;
the config summaries' cache is cleared before each measure so that both
read the configs (one query for the whole page).
"""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from registry.maintenance import readonly
from registry.mirror.models import MirroredRepository, Upstream
from registry.models import Blob, Manifest, Repository, Tag, Upload
from tests import admindata

pytestmark = pytest.mark.django_db

FEW, MANY = 3, 300


def queries(client: Client, url: str, method: str = "get", data: dict | None = None) -> int:
    """The queries of a request, after a first one that warms what Django caches per process
    (content types) and with the configs' cache cleared; the read-only switch, read at most once a
    second, is read in each measured request (one query)."""
    getattr(client, method)(url, data or {})
    cache.clear()
    readonly.forget()
    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(url, data or {})
    assert response.status_code == 200, (url, response.status_code)
    return len(captured)


def seeds(prefix: str, start: int, stop: int) -> list[str]:
    return [f"{prefix}{n:04}" for n in range(start, stop)]


@pytest.fixture
def repository() -> Repository:
    return Repository.objects.create(name="team/app")


def test_the_repository_list_is_bounded(admin_client) -> None:
    admindata.repositories([f"team/r{n:04}" for n in range(FEW)])
    urls = [
        "/admin/registry/repository/",
        "/admin/registry/repository/?o=-3",
        "/admin/registry/repository/?o=-4",
    ]
    few = [queries(admin_client, url) for url in urls]
    admindata.repositories([f"team/r{n:04}" for n in range(FEW, MANY)])
    assert [queries(admin_client, url) for url in urls] == few
    assert Repository.objects.count() == MANY


def test_the_upstream_list_and_the_mirrored_repositories_are_bounded(admin_client) -> None:
    def mirrors(start: int, stop: int) -> None:
        for n in range(start, stop):
            upstream = Upstream.objects.create(prefix=f"mirror{n:04}", url="https://registry.example")
            repository = Repository.objects.create(name=f"mirror{n:04}/library/alpine")
            MirroredRepository.objects.create(repository=repository, upstream=upstream)

    mirrors(0, FEW)
    urls = ["/admin/registry/upstream/", "/admin/registry/repository/"]
    few = [queries(admin_client, url) for url in urls]
    mirrors(FEW, MANY // 3)
    assert [queries(admin_client, url) for url in urls] == few


def test_a_repository_page_is_bounded(admin_client, repository) -> None:
    admindata.images(repository, seeds("t", 0, FEW))
    url = f"/admin/registry/tag/?repository__id__exact={repository.pk}"
    urls = [url, f"{url}&o=-6", f"{url}&q=t00"]
    few = [queries(admin_client, each) for each in urls]
    admindata.images(repository, seeds("t", FEW, MANY))
    assert [queries(admin_client, each) for each in urls] == few
    assert ">t0049</a>" in admin_client.get(url).content.decode()


def test_the_dashboard_is_bounded(admin_client, repository) -> None:
    admindata.images(repository, seeds("t", 0, FEW))
    few = queries(admin_client, "/admin/")
    admindata.images(repository, seeds("t", FEW, MANY))
    admindata.repositories([f"team/r{n:04}" for n in range(MANY)])
    assert queries(admin_client, "/admin/") == few


def test_the_manifest_and_blob_lists_are_bounded(admin_client, repository) -> None:
    admindata.images(repository, seeds("t", 0, FEW))
    urls = ["/admin/registry/manifest/", "/admin/registry/blob/", "/admin/registry/manifest/?q=team/app"]
    few = [queries(admin_client, url) for url in urls]
    admindata.images(repository, seeds("t", FEW, MANY))
    assert [queries(admin_client, url) for url in urls] == few


def test_an_index_page_is_bounded_whatever_its_children_tags_and_referrers(admin_client, repository) -> None:
    def measure(count: int) -> int:
        children = admindata.images(repository, seeds(f"c{count}-", 0, count), tagged=False)
        index = admindata.index_of(repository, children, f"index-{count}")
        Tag.objects.bulk_create(
            [Tag(repository=repository, name=f"alias-{count}-{n}", manifest=index) for n in range(count)]
        )
        admindata.images(repository, seeds(f"r{count}-", 0, count), subject=index.digest, tagged=False)
        return queries(admin_client, f"/admin/registry/manifest/{index.pk}/change/")

    assert measure(MANY) == measure(FEW)


def test_an_image_page_and_a_shared_blob_page_are_bounded(admin_client) -> None:
    def measure(count: int) -> tuple[int, int]:
        shared = None
        for name in [f"team/s{count}-{n}" for n in range(count)]:
            repository = Repository.objects.create(name=name)
            manifest = admindata.images(repository, ["shared"] if shared is None else [], tagged=False)
            shared = shared or manifest[0]
        blob = Blob.objects.get(digest=admindata.digest("shared-layer"))
        return queries(admin_client, f"/admin/registry/manifest/{shared.pk}/change/"), queries(
            admin_client, f"/admin/registry/blob/{blob.pk}/change/"
        )

    few = measure(FEW)
    Manifest.objects.all().delete()
    Blob.objects.all().delete()
    assert measure(MANY) == few


def test_the_upload_list_is_bounded(admin_client, repository) -> None:
    admindata.uploads(repository, FEW)
    few = queries(admin_client, "/admin/registry/upload/")
    admindata.uploads(repository, MANY - FEW)
    assert queries(admin_client, "/admin/registry/upload/") == few
    assert Upload.objects.count() == MANY


def test_confirming_a_bulk_tag_delete_is_bounded(admin_client, repository) -> None:
    def measure(count: int) -> int:
        admindata.images(repository, seeds(f"d{count}-", 0, count))
        selected = list(Tag.objects.filter(name__startswith=f"d{count}-").values_list("pk", flat=True))
        url = f"/admin/registry/tag/?repository__id__exact={repository.pk}"
        return queries(admin_client, url, "post", {"action": "delete_selected", "_selected_action": selected})

    assert measure(MANY) == measure(FEW)
