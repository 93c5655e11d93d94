"""``/api/upstreams/``: superusers create, read, change and delete upstreams; no answer holds a password."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from registry.events.models import AuditEvent
from registry.mirror.models import MirroredRepository, Upstream
from registry.models import Repository
from tests import access

pytestmark = [pytest.mark.auth, pytest.mark.django_db]

URL = "/api/upstreams/"
HUB = "https://registry-1.docker.io"


@pytest.fixture(autouse=True)
def secured(settings, tmp_path) -> None:
    access.secure(settings, tmp_path)


@pytest.fixture
def root() -> APIClient:
    client = APIClient()
    client.force_authenticate(access.user("root", is_superuser=True, is_staff=True))
    return client


def create(client: APIClient, **fields: object):
    return client.post(URL, {"prefix": "docker.io", "url": HUB, **fields}, format="json")


def test_only_superusers_manage_upstreams() -> None:
    anonymous = APIClient()
    assert anonymous.get(URL).status_code == 401
    staff = APIClient()
    staff.force_authenticate(access.user("operator", is_staff=True))
    assert staff.get(URL).status_code == 403
    assert create(staff).status_code == 403
    assert not Upstream.objects.exists()


def test_it_creates_an_upstream_and_never_returns_its_password(root: APIClient) -> None:
    response = create(
        root, username="alice", password="dckr_pat_secret", repositories=["library/*"], unused_days=30
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert "dckr_pat_secret" not in response.content.decode()
    assert "password" not in created
    assert (created["prefix"], created["url"], created["auth"]) == ("docker.io", HUB, "alice (password)")
    assert (created["repositories"], created["unused_days"], created["tag_trust_seconds"]) == (
        ["library/*"],
        30,
        600,
    )
    assert (created["mirrored_repositories"], created["last_sync"], created["from_environment"]) == (
        0,
        None,
        False,
    )
    assert Upstream.objects.get().password == "dckr_pat_secret"
    listed = root.get(URL)
    assert "dckr_pat_secret" not in listed.content.decode()
    assert listed.json()["results"][0]["prefix"] == "docker.io"


def test_a_blank_password_keeps_the_stored_one_and_null_removes_it(root: APIClient) -> None:
    upstream_id = create(root, username="alice", password="secret").json()["id"]
    answer = root.patch(f"{URL}{upstream_id}/", {"password": "", "tag_trust_seconds": 60}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["tag_trust_seconds"] == 60
    assert Upstream.objects.get().password == "secret"
    root.put(f"{URL}{upstream_id}/", {"prefix": "docker.io", "url": HUB, "username": "alice"}, format="json")
    assert Upstream.objects.get().password == "secret"
    root.patch(f"{URL}{upstream_id}/", {"password": "new"}, format="json")
    assert Upstream.objects.get().password == "new"
    answer = root.patch(f"{URL}{upstream_id}/", {"password": None, "username": ""}, format="json")
    assert answer.json()["auth"] == "anonymous"
    assert Upstream.objects.get().password == ""


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prefix": "Docker.io"}, "prefix"),
        ({"prefix": "docker.io/"}, "prefix"),
        ({"prefix": "a\x00b"}, "prefix"),
        ({"url": "ftp://hub.example"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"repositories": []}, "repositories"),
        ({"repositories": ["library/*", "/bad"]}, "repositories"),
        ({"tag_trust_seconds": -1}, "tag_trust_seconds"),
    ],
)
def test_it_refuses_bad_upstreams(root: APIClient, fields: dict, field: str) -> None:
    response = create(root, **fields)
    assert response.status_code == 400
    assert field in response.json()
    assert not Upstream.objects.exists()


def test_a_prefix_is_unique_and_does_not_change(root: APIClient) -> None:
    upstream_id = create(root).json()["id"]
    assert "prefix" in create(root).json()
    answer = root.patch(f"{URL}{upstream_id}/", {"prefix": "hub"}, format="json")
    assert answer.status_code == 400 and "cannot change" in answer.json()["prefix"][0]


def test_it_counts_mirrored_repositories_and_their_last_sync(root: APIClient) -> None:
    upstream = Upstream.objects.create(prefix="docker.io", url=HUB)
    synced = timezone.now()
    for name, last_synced in (("docker.io/library/alpine", synced), ("docker.io/library/debian", None)):
        repository = Repository.objects.create(name=name)
        MirroredRepository.objects.create(repository=repository, upstream=upstream, last_synced=last_synced)
    shown = root.get(f"{URL}{upstream.pk}/").json()
    assert shown["mirrored_repositories"] == 2
    assert shown["last_sync"] == synced.isoformat().replace("+00:00", "Z")


def test_upstreams_from_the_environment_are_read_only(root: APIClient) -> None:
    upstream = Upstream.objects.create(prefix="docker.io", url=HUB, from_environment=True)
    answer = root.patch(f"{URL}{upstream.pk}/", {"enabled": False}, format="json")
    assert answer.status_code == 403 and "CROW_UPSTREAMS" in answer.json()["detail"]
    assert root.delete(f"{URL}{upstream.pk}/").status_code == 403
    assert Upstream.objects.get().enabled
    assert root.get(f"{URL}{upstream.pk}/").json()["from_environment"] is True


def test_it_deletes_an_upstream(root: APIClient) -> None:
    upstream_id = create(root).json()["id"]
    assert root.delete(f"{URL}{upstream_id}/").status_code == 204
    assert not Upstream.objects.exists()


def test_the_schema_describes_upstreams_without_a_readable_password(root: APIClient) -> None:
    schema = root.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}).json()
    assert "/api/upstreams/" in schema["paths"]
    properties = schema["components"]["schemas"]["Upstream"]["properties"]
    assert properties["password"]["writeOnly"] is True
    assert properties["auth"]["readOnly"] is True


def test_changes_are_audited_without_the_password(root: APIClient) -> None:
    upstream_id = create(root, username="alice", password="dckr_pat_secret").json()["id"]
    root.delete(f"{URL}{upstream_id}/")
    events = list(AuditEvent.objects.filter(action__startswith="upstream_").order_by("id"))
    assert [(event.action, event.actor) for event in events] == [
        ("upstream_save", "root"),
        ("upstream_delete", "root"),
    ]
    assert events[0].detail["auth"] == "alice (password)" and events[0].detail["prefix"] == "docker.io"
    assert "dckr_pat_secret" not in str(events[0].detail)
