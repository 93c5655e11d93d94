"""Who may do what: namespaces, groups, public repositories, robots' limits, mounts, the open mode."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from registry import patterns
from registry.auth import robots
from registry.auth.models import PULL, PUSH, Robot
from registry.db import repositories
from registry.models import Repository, RepositoryBlob
from tests import access, oci

pytestmark = [pytest.mark.auth, pytest.mark.django_db]

LAYER = oci.layer("permissions")


@pytest.fixture(autouse=True)
def world(settings, tmp_path, client: Client) -> None:
    settings.CROW_AUTH_DISABLED = True
    for name in ("team/app", "alice/tool", "open/app"):
        oci.push_image(client, name, oci.image(name), "v1")
    oci.push_blob(client, "secret/app", LAYER)
    access.secure(settings, tmp_path)
    access.user("alice")
    access.user("bob")


def tags(client: Client, name: str, headers: dict[str, str]):
    return client.get(f"/v2/{name}/tags/list", headers=headers)


def start(client: Client, name: str, headers: dict[str, str], query: str = ""):
    return client.post(f"/v2/{name}/blobs/uploads/{query}", headers=headers)


@pytest.mark.parametrize(
    ("pattern", "name", "covered"),
    [
        ("team/app", "team/app", True),
        ("team/app", "team/app2", False),
        ("team/app", "team/app/x", False),
        ("team/*", "team/app", True),
        ("team/*", "team/app/cache", True),
        ("team/*", "team", False),
        ("team/*", "teammate/app", False),
        ("*", "anything/at/all", True),
    ],
)
def test_it_matches_patterns(pattern: str, name: str, covered: bool) -> None:
    assert patterns.matches(pattern, name) is covered
    repositories.get_or_create(name)
    assert Repository.objects.filter(patterns.q([pattern]), name=name).exists() is covered


@pytest.mark.parametrize("pattern", ["", "Team/App", "team/", "team/**", "/team", "team/*/x", "te am"])
def test_it_refuses_malformed_patterns(pattern: str) -> None:
    assert not patterns.is_pattern(pattern)


def test_it_gives_users_their_own_namespace(client: Client) -> None:
    alice = access.basic("alice")

    assert tags(client, "alice/tool", alice).status_code == 200
    assert start(client, "alice/new", alice).status_code == 202
    assert client.delete("/v2/alice/tool/manifests/v1", headers=alice).status_code == 202
    oci.assert_error(tags(client, "alice/tool", access.basic("bob")), 403, "DENIED")
    oci.assert_error(tags(client, "alicetool/x", alice), 403, "DENIED")


def test_it_grants_to_groups(client: Client) -> None:
    group = Group.objects.create(name="developers")
    group.user_set.add(access.user("carol"))
    access.grant("team/*", "pull,push", group=group)

    assert start(client, "team/app", access.basic("carol")).status_code == 202
    oci.assert_error(start(client, "team/app", access.basic("bob")), 403, "DENIED")


def test_it_lets_staff_and_superusers_do_everything(client: Client) -> None:
    access.user("root", is_superuser=True)
    access.user("operator", is_staff=True)

    for username in ("root", "operator"):
        assert client.delete("/v2/team/app/manifests/v1", headers=access.basic(username)).status_code in (
            202,
            404,
        )
        assert start(client, "anything/new", access.basic(username)).status_code == 202


def test_it_refuses_inactive_users(client: Client) -> None:
    access.user("gone", is_active=False)

    oci.assert_error(client.get("/v2/", headers=access.basic("gone")), 401, "UNAUTHORIZED")


def test_it_lets_anyone_pull_public_repositories_but_never_push_anonymously(client: Client) -> None:
    access.public("open/*")

    assert tags(client, "open/app", {}).status_code == 200
    assert client.get("/v2/open/app/manifests/v1", headers={"Accept": oci.MANIFEST_ACCEPT}).status_code == 200
    oci.assert_error(start(client, "open/app", {}), 401, "UNAUTHORIZED")
    oci.assert_error(start(client, "open/app", access.basic("bob")), 403, "DENIED")
    oci.assert_error(tags(client, "team/app", {}), 401, "UNAUTHORIZED")


def test_it_keeps_public_repositories_for_authenticated_users_without_anonymous_pull(
    client: Client, settings
) -> None:
    settings.CROW_ANONYMOUS_PULL = False
    access.public("open/*")

    oci.assert_error(tags(client, "open/app", {}), 401, "UNAUTHORIZED")
    assert tags(client, "open/app", access.basic("bob")).status_code == 200
    anonymous_token = access.token(client, "repository:open/app:pull")
    oci.assert_error(tags(client, "open/app", access.bearer(anonymous_token)), 401, "UNAUTHORIZED")


def test_it_lists_public_repositories_in_the_catalog(client: Client) -> None:
    access.public("open/*")
    token = access.token(client, "registry:catalog:*")

    assert oci.document(client.get("/v2/_catalog", headers=access.bearer(token))) == {
        "repositories": ["open/app"]
    }
    assert oci.document(client.get("/v2/_catalog", headers=access.basic("alice"))) == {
        "repositories": ["alice/tool", "open/app"]
    }
    oci.assert_error(client.get("/v2/_catalog"), 401, "UNAUTHORIZED")


def test_it_keeps_a_robot_within_its_patterns_and_its_owner(client: Client) -> None:
    owner = access.user("owner")
    access.grant("team/app", "pull,push", to=owner)
    _, secret = robots.create(owner, "ci", "team/*\nowner/*", frozenset({PULL, PUSH}))
    robot = access.basic("robot$ci", secret)

    assert start(client, "team/app", robot).status_code == 202
    assert start(client, "owner/new", robot).status_code == 202  # the owner's namespace
    oci.assert_error(start(client, "team/other", robot), 403, "DENIED")  # beyond its owner
    oci.assert_error(start(client, "alice/tool", robot), 403, "DENIED")  # beyond its patterns
    oci.assert_error(client.delete("/v2/team/app/manifests/v1", headers=robot), 403, "DENIED")


def test_it_refuses_revoked_expired_and_wrong_robots(client: Client) -> None:
    owner = access.user("owner", is_staff=True)
    _, secret = robots.create(owner, "ci", "team/*", frozenset({PULL}))
    assert tags(client, "team/app", access.basic("robot$ci", secret)).status_code == 200

    oci.assert_error(tags(client, "team/app", access.basic("robot$ci", secret + "x")), 401, "UNAUTHORIZED")
    oci.assert_error(tags(client, "team/app", access.basic("robot$nobody", secret)), 401, "UNAUTHORIZED")
    Robot.objects.update(expires=timezone.now() - timedelta(seconds=1))
    oci.assert_error(tags(client, "team/app", access.basic("robot$ci", secret)), 401, "UNAUTHORIZED")
    Robot.objects.update(expires=None, revoked=True)
    oci.assert_error(tags(client, "team/app", access.basic("robot$ci", secret)), 401, "UNAUTHORIZED")


def test_it_keeps_only_a_hash_of_a_robot_secret_and_notes_its_use(client: Client) -> None:
    robot, secret = robots.create(access.user("owner", is_staff=True), "ci", "team/*", frozenset({PULL}))

    assert secret.startswith("crow_") and secret not in robot.secret_hash
    assert robot.last_used is None
    client.get("/v2/", headers=access.basic("robot$ci", secret))
    assert Robot.objects.get().last_used is not None


def test_it_mounts_only_from_repositories_the_caller_may_pull(client: Client) -> None:
    access.grant("team/*", "pull,push", to=access.user("carol"))
    carol = access.basic("carol")

    explicit = start(client, "team/app", carol, f"?mount={LAYER.digest}&from=secret/app")
    automatic = start(client, "team/app", carol, f"?mount={LAYER.digest}")

    assert explicit.status_code == 202 and automatic.status_code == 202
    assert not RepositoryBlob.objects.filter(repository__name="team/app", blob__digest=LAYER.digest).exists()
    oci.assert_error(client.get(f"/v2/team/app/blobs/{LAYER.digest}", headers=carol), 404, "BLOB_UNKNOWN")


def test_it_mounts_from_a_pullable_repository_with_or_without_from(client: Client) -> None:
    dave = access.user("dave")
    access.grant("team/*", "pull,push", to=dave)
    access.grant("secret/*", "pull", to=dave)

    explicit = start(client, "team/app", access.basic("dave"), f"?mount={LAYER.digest}&from=secret/app")
    automatic = start(client, "team/other", access.basic("dave"), f"?mount={LAYER.digest}")

    assert explicit.status_code == 201 and automatic.status_code == 201


def test_it_opens_everything_when_auth_is_disabled(client: Client, settings) -> None:
    settings.CROW_AUTH_DISABLED = True

    assert client.get("/v2/").status_code == 200
    assert start(client, "anyone/anything", {}).status_code == 202
    assert start(client, "team/app", {}, f"?mount={LAYER.digest}").status_code == 201
    assert len(oci.document(client.get("/v2/_catalog"))["repositories"]) == 5
