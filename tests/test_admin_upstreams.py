"""The console's upstreams and mirrored repositories: configured by clicking, never showing a password."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from registry.mirror.models import MirroredRepository, Upstream
from registry.models import Repository

pytestmark = pytest.mark.django_db

HUB = "https://registry-1.docker.io"
SECRET = "dckr_pat_do_not_show"
LIST = "/admin/registry/upstream/"


def form(**fields: object) -> dict:
    values = {
        "prefix": "docker.io",
        "url": HUB,
        "username": "",
        "password": "",
        "tag_trust_seconds": "600",
        "repositories": "*",
        "unused_days": "",
        "enabled": "on",
    }
    return {key: value for key, value in {**values, **fields}.items() if value is not None}


def mirror(upstream: Upstream, name: str, **times: object) -> Repository:
    repository = Repository.objects.create(name=name)
    MirroredRepository.objects.create(repository=repository, upstream=upstream, **times)
    return repository


def test_it_adds_an_upstream_and_lists_it_without_its_password(admin_client: Client) -> None:
    assert 'name="remove_password"' not in admin_client.get(f"{LIST}add/").content.decode()
    response = admin_client.post(f"{LIST}add/", form(username="alice", password=SECRET, unused_days="30"))
    assert response.status_code == 302, response.content.decode()
    upstream = Upstream.objects.get()
    assert (upstream.username, upstream.password, upstream.unused_days) == ("alice", SECRET, 30)
    listing = admin_client.get(LIST).content.decode()
    assert "docker.io" in listing and HUB in listing and "alice (password)" in listing
    assert "10m" in listing and "never" in listing
    page = admin_client.get(f"{LIST}{upstream.pk}/change/").content.decode()
    assert SECRET not in listing and SECRET not in page
    assert 'type="password"' in page
    assert 'name="remove_password"' in page


def test_a_blank_password_keeps_the_stored_one_and_the_box_removes_it(admin_client: Client) -> None:
    upstream = Upstream.objects.create(prefix="docker.io", url=HUB, username="alice", password=SECRET)
    change = f"{LIST}{upstream.pk}/change/"
    assert admin_client.post(change, form(username="alice", tag_trust_seconds="60")).status_code == 302
    upstream.refresh_from_db()
    assert (upstream.password, upstream.tag_trust_seconds) == (SECRET, 60)
    assert admin_client.post(change, form(username="alice", password="new")).status_code == 302
    upstream.refresh_from_db()
    assert upstream.password == "new"
    assert admin_client.post(change, form(remove_password="on")).status_code == 302
    upstream.refresh_from_db()
    assert (upstream.password, upstream.auth_kind) == ("", "anonymous")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"prefix": "Docker.io"}, "is not a repository name prefix"),
        ({"url": "ftp://hub.example"}, "http"),
        ({"repositories": "library/* /bad"}, "is not a repository pattern"),
    ],
)
def test_it_refuses_a_bad_upstream(admin_client: Client, fields: dict, error: str) -> None:
    response = admin_client.post(f"{LIST}add/", form(**fields))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Upstream.objects.exists()


def test_the_prefix_does_not_change(admin_client: Client) -> None:
    upstream = Upstream.objects.create(prefix="docker.io", url=HUB)
    response = admin_client.post(f"{LIST}{upstream.pk}/change/", form(prefix="hub"))
    assert "cannot change" in response.content.decode()
    assert Upstream.objects.get().prefix == "docker.io"


def test_an_upstream_from_the_environment_is_read_only(admin_client: Client) -> None:
    upstream = Upstream.objects.create(
        prefix="docker.io", url=HUB, username="alice", password=SECRET, from_environment=True
    )
    page = admin_client.get(f"{LIST}{upstream.pk}/change/").content.decode()
    assert "CROW_UPSTREAMS" in page and "alice (password)" in page
    assert SECRET not in page and 'name="url"' not in page
    assert (
        admin_client.post(f"{LIST}{upstream.pk}/change/", form(url="https://evil.example")).status_code == 403
    )
    assert admin_client.post(f"{LIST}{upstream.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Upstream.objects.get().url == HUB


def test_it_counts_mirrored_repositories_and_shows_them_in_the_repository_list(admin_client: Client) -> None:
    upstream = Upstream.objects.create(prefix="docker.io", url=HUB)
    pulled = timezone.now() - timedelta(days=3)
    alpine = mirror(upstream, "docker.io/library/alpine", last_pulled=pulled, last_synced=pulled)
    mirror(upstream, "docker.io/library/debian")
    Repository.objects.create(name="team/app")
    listing = admin_client.get(LIST).content.decode()
    assert '?q=docker.io%2F">2</a>' in listing
    repositories = admin_client.get("/admin/registry/repository/").content.decode()
    assert '<td class="field-mirrored_from">docker.io</td>' in repositories
    assert '<td class="field-mirrored_from">-</td>' in repositories  # team/app is local
    assert '<td class="field-last_pulled">never</td>' in repositories  # debian was never pulled
    found = admin_client.get("/admin/registry/repository/?q=docker.io%2F").content.decode()
    assert "library/alpine" in found and "team/app" not in found
    page = admin_client.get(f"/admin/registry/tag/?repository__id__exact={alpine.pk}").content.decode()
    assert "<dt>mirrored from</dt>" in page and HUB in page and "<dt>last synced</dt>" in page
