"""Which upstream a name is read from (``registry.mirror.routing``), the push policy and pull records."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import errors
from registry.errors import RegistryError
from registry.mirror import policy, routing, usage
from registry.mirror.models import MirroredRepository, Upstream
from registry.models import Repository

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh() -> None:
    routing.invalidate()
    usage.forget()


def _upstream(prefix: str, url: str = "https://registry.example", **fields) -> Upstream:
    return Upstream.objects.create(prefix=prefix, url=url, **fields)


@pytest.mark.parametrize(
    ("name", "remote"),
    [
        ("docker.io/alpine", "library/alpine"),
        ("docker.io/library/alpine", "library/alpine"),
        ("docker.io/bitnami/redis", "bitnami/redis"),
        ("ghcr.io/owner/app", "owner/app"),
        ("ghcr.io/app", "app"),  # the library/ rule is Docker Hub's only
    ],
)
def test_it_names_the_upstream_repository(name: str, remote: str) -> None:
    _upstream("docker.io", "https://registry-1.docker.io")
    _upstream("ghcr.io", "https://ghcr.io")
    route = routing.route(name)
    assert route is not None
    assert (route.remote, route.local, route.root) == (remote, name, False)


def test_it_routes_local_names_nowhere() -> None:
    _upstream("docker.io", "https://registry-1.docker.io")
    assert routing.route("team/app") is None
    assert routing.route("docker.io") is None  # a prefix is not a repository of its upstream
    assert routing.route("docker.iox/alpine") is None
    assert not routing.is_mirrored("team/app")
    assert routing.is_mirrored("docker.io/alpine")


def test_it_prefers_the_longest_prefix() -> None:
    _upstream("mirrors", "https://one.example")
    _upstream("mirrors/quay", "https://quay.example")
    assert routing.route("mirrors/quay/org/app").upstream.url == "https://quay.example"
    assert routing.route("mirrors/other/app").upstream.url == "https://one.example"


def test_it_mirrors_only_what_the_patterns_allow_and_only_enabled_upstreams() -> None:
    _upstream("docker.io", "https://registry-1.docker.io", repositories="library/*")
    _upstream("off.example", enabled=False)
    assert routing.route("docker.io/alpine") is not None
    assert routing.route("docker.io/bitnami/redis") is None
    assert routing.is_mirrored("docker.io/bitnami/redis")  # still no pushes into the prefix
    assert routing.route("off.example/app") is None


def test_it_reads_the_upstreams_once_and_again_when_one_changes(settings) -> None:
    settings.CROW_MIRROR_ROUTES_TTL = 3600
    upstream = _upstream("docker.io", "https://registry-1.docker.io")
    routing.route("docker.io/alpine")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(10):
            routing.route("docker.io/alpine")
    assert len(queries) == 0
    upstream.enabled = False
    upstream.save()  # the signal drops the cache
    assert routing.route("docker.io/alpine") is None
    upstream.delete()
    _upstream("ghcr.io")
    assert routing.route("ghcr.io/app") is not None


def test_it_raises_instead_of_querying_for_the_fast_path(settings) -> None:
    _upstream("docker.io")
    with pytest.raises(routing.NotLoaded):
        routing.route("docker.io/alpine", cached_only=True)
    routing.route("docker.io/alpine")
    assert routing.route("docker.io/alpine", cached_only=True) is not None


def test_it_serves_one_upstream_at_the_root_unless_a_local_repository_has_the_name(settings) -> None:
    settings.CROW_MIRROR_ROOT = "docker.io"
    _upstream("docker.io", "https://registry-1.docker.io")
    route = routing.serving("library/alpine")
    assert route is not None
    assert (route.remote, route.local, route.root) == ("library/alpine", "docker.io/library/alpine", True)
    assert routing.serving("alpine").local == "docker.io/library/alpine"
    Repository.objects.create(name="team/app")
    assert routing.serving("team/app") is None
    assert not routing.is_mirrored("library/alpine")  # pushes there make a local repository


def test_it_refuses_pushes_into_a_mirror_naming_the_upstream() -> None:
    _upstream("docker.io", "https://registry-1.docker.io")
    policy.refuse_push("team/app")
    with pytest.raises(RegistryError) as raised:
        policy.refuse_push("docker.io/library/alpine")
    assert raised.value.error is errors.DENIED
    assert "https://registry-1.docker.io" in raised.value.message


def test_it_keeps_the_password_out_of_its_representation() -> None:
    _upstream("docker.io", password="s3cret")
    assert "s3cret" not in repr(routing.route("docker.io/alpine"))


def test_it_records_a_pull_at_most_once_in_a_while() -> None:
    upstream = _upstream("docker.io")
    repository = Repository.objects.create(name="docker.io/library/alpine")
    MirroredRepository.objects.create(repository=repository, upstream=upstream)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            usage.record_pull(repository.id)
            usage.record_pull_of(repository.name)
    assert len(queries) == 2  # one by id, one by name
    assert MirroredRepository.objects.get(repository=repository).last_pulled is not None
