"""The management API: robots, grants, public patterns, repositories and tags, and its schema."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from registry.auth import robots
from registry.auth.models import Grant, PublicPattern, Robot
from tests import access, oci

pytestmark = [pytest.mark.auth, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def world(settings, tmp_path, client: Client) -> None:
    settings.CROW_AUTH_DISABLED = True
    for name in ("team/app", "alice/tool"):
        oci.push_image(client, name, oci.image(name), "v1")
    access.secure(settings, tmp_path)


@pytest.fixture
def alice(client: Client) -> Client:
    client.force_login(access.user("alice"))
    return client


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(access.user("operator", is_staff=True))
    return client


def test_it_requires_authentication(client: Client) -> None:
    assert client.get("/api/repositories/").status_code in (401, 403)
    assert client.post("/api/robots/", {}).status_code in (401, 403)


def test_it_takes_an_api_token(client: Client) -> None:
    token = Token.objects.create(user=access.user("alice"))

    response = client.get("/api/repositories/", headers={"Authorization": f"Token {token.key}"})

    assert response.status_code == 200
    assert [r["name"] for r in response.json()["results"]] == ["alice/tool"]


def test_it_creates_a_robot_and_shows_its_secret_once(alice: Client) -> None:
    response = alice.post(
        "/api/robots/",
        {"name": "ci", "patterns": ["alice/*"], "actions": ["pull", "push"], "description": "CI"},
        content_type="application/json",
    )

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["username"] == "robot$ci" and created["owner"] == "alice"
    assert created["patterns"] == ["alice/*"] and created["actions"] == ["pull", "push"]
    secret = created["secret"]
    assert "secret" not in alice.get("/api/robots/ci/").json()
    registry = Client()
    assert (
        registry.get("/v2/alice/tool/tags/list", headers=access.basic("robot$ci", secret)).status_code == 200
    )


def test_it_refuses_bad_robots(alice: Client) -> None:
    for bad in (
        {"name": "Bad Name", "patterns": ["alice/*"], "actions": ["pull"]},
        {"name": "ci", "patterns": ["not a pattern"], "actions": ["pull"]},
        {"name": "ci", "patterns": [], "actions": ["pull"]},
        {"name": "ci", "patterns": ["alice/*"], "actions": ["fly"]},
    ):
        assert alice.post("/api/robots/", bad, content_type="application/json").status_code == 400, bad


def test_it_revokes_a_robot(alice: Client) -> None:
    response = alice.post(
        "/api/robots/",
        {"name": "ci", "patterns": ["alice/*"], "actions": ["pull"]},
        content_type="application/json",
    )
    secret = response.json()["secret"]

    assert alice.delete("/api/robots/ci/").status_code == 204

    assert Robot.objects.get(name="ci").revoked
    registry = Client()
    oci.assert_error(registry.get("/v2/", headers=access.basic("robot$ci", secret)), 401, "UNAUTHORIZED")


def test_it_shows_users_their_own_robots_only(alice: Client) -> None:
    robots.create(access.user("bob"), "bobs", "bob/*", frozenset({"pull"}))

    assert alice.get("/api/robots/").json()["results"] == []
    assert alice.get("/api/robots/bobs/").status_code == 404
    assert alice.delete("/api/robots/bobs/").status_code == 404


def test_it_lets_users_manage_their_namespace_only(alice: Client) -> None:
    access.user("bob")
    grant = {"pattern": "alice/tool", "user": "bob", "actions": ["pull"]}

    assert alice.post("/api/grants/", grant, content_type="application/json").status_code == 201
    outside = {**grant, "pattern": "team/*"}
    assert alice.post("/api/grants/", outside, content_type="application/json").status_code == 403
    assert (
        alice.post("/api/public/", {"pattern": "alice/*"}, content_type="application/json").status_code == 201
    )
    assert alice.post("/api/public/", {"pattern": "*"}, content_type="application/json").status_code == 403
    assert Grant.objects.get().pattern == "alice/tool"
    assert list(PublicPattern.objects.values_list("pattern", flat=True)) == ["alice/*"]


def test_it_lets_staff_grant_anything_and_take_it_back(staff: Client) -> None:
    access.user("bob")
    response = staff.post(
        "/api/grants/",
        {"pattern": "team/*", "user": "bob", "actions": ["pull", "push"]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    registry = Client()
    assert registry.get("/v2/team/app/tags/list", headers=access.basic("bob")).status_code == 200

    assert staff.delete(f"/api/grants/{response.json()['id']}/").status_code == 204

    oci.assert_error(registry.get("/v2/team/app/tags/list", headers=access.basic("bob")), 403, "DENIED")


def test_it_refuses_a_grant_to_nobody_or_to_both(staff: Client) -> None:
    access.user("bob")
    for bad in (
        {"pattern": "team/*", "actions": ["pull"]},
        {"pattern": "team/*", "user": "bob", "group": "nope", "actions": ["pull"]},
        {"pattern": "team/*", "user": "bob", "actions": []},
        {"pattern": "Team", "user": "bob", "actions": ["pull"]},
    ):
        assert staff.post("/api/grants/", bad, content_type="application/json").status_code == 400, bad


def test_it_makes_a_repository_public(staff: Client) -> None:
    assert (
        staff.post("/api/public/", {"pattern": "team/app"}, content_type="application/json").status_code
        == 201
    )

    assert Client().get("/v2/team/app/tags/list").status_code == 200


def test_it_lists_repositories_and_tags_the_caller_may_pull(alice: Client) -> None:
    assert [r["name"] for r in alice.get("/api/repositories/").json()["results"]] == ["alice/tool"]
    (tag,) = alice.get("/api/repositories/alice/tool/tags/").json()["results"]
    assert tag["name"] == "v1" and tag["digest"].startswith("sha256:")
    assert alice.get("/api/repositories/team/app/tags/").status_code == 404
    assert alice.get("/api/repositories/alice/missing/tags/").status_code == 404


def test_it_serves_its_openapi_schema(alice: Client) -> None:
    response = alice.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/robots/", "/api/grants/", "/api/public/", "/api/repositories/"} <= set(paths)
