"""The audit log: what pushes, deletes, logins, access-rule changes and gc record, and ``GET /api/audit/``."""

import ipaddress
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from registry.auth import robots
from registry.auth.models import DELETE, PULL, PUSH
from registry.events.models import AuditEvent
from registry.models import RetentionRule, Tag
from tests import access, oci

pytestmark = [pytest.mark.auth, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def secured(settings, tmp_path) -> None:
    access.secure(settings, tmp_path)


@pytest.fixture
def alice() -> Client:
    access.user("alice")
    return Client(headers=access.basic("alice"), REMOTE_ADDR="192.0.2.7")


@pytest.fixture
def robot() -> Client:
    owner = access.user("owner", is_staff=True)
    _, secret = robots.create(owner, "ci", "team/*", frozenset({PULL, PUSH, DELETE}))
    return Client(headers=access.basic("robot$ci", secret), REMOTE_ADDR="192.0.2.8")


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(access.user("operator", is_staff=True))
    return client


def rows(**filters: str) -> list[tuple]:
    found = AuditEvent.objects.filter(**filters).order_by("id")
    return list(found.values_list("action", "actor", "repository", "reference", "digest"))


def test_it_records_a_push_by_a_user_with_its_address_and_the_repository_creation(alice: Client) -> None:
    pushed = oci.image("alice-app")
    oci.push_image(alice, "alice/app", pushed, "v1")

    assert rows(action__in=["create_repository", "push"]) == [
        ("create_repository", "alice", "alice/app", "", ""),
        ("push", "alice", "alice/app", "v1", pushed.manifest.digest),
    ]
    push = AuditEvent.objects.get(action="push")
    assert push.address == "192.0.2.7"
    assert push.media_type == pushed.manifest.media_type and push.size == len(pushed.manifest.data)
    assert push.pending  # for the webhook dispatcher


def test_it_records_a_tag_moved_to_another_manifest_with_what_it_named(robot: Client) -> None:
    first, second = oci.image("first"), oci.image("second")
    oci.push_image(robot, "team/app", first, "latest")
    oci.push_image(robot, "team/app", first, "latest")  # the same again: a push, not a move
    oci.push_image(robot, "team/app", second, "latest")

    pushes = AuditEvent.objects.filter(action__in=["push", "tag_move"]).order_by("id")
    assert [(e.action, e.actor, e.digest, e.previous) for e in pushes] == [
        ("push", "robot$ci", first.manifest.digest, ""),
        ("push", "robot$ci", first.manifest.digest, first.manifest.digest),
        ("tag_move", "robot$ci", second.manifest.digest, first.manifest.digest),
    ]


def test_it_records_deletes_of_a_tag_a_manifest_and_a_blob(robot: Client) -> None:
    pushed = oci.image("doomed")
    oci.push_image(robot, "team/app", pushed, "v1")
    oci.push_manifest(robot, "team/app", "v2", pushed.manifest)

    assert robot.delete("/v2/team/app/manifests/v2").status_code == 202
    assert robot.delete(f"/v2/team/app/manifests/{pushed.manifest.digest}").status_code == 202
    assert robot.delete(f"/v2/team/app/blobs/{pushed.layers[0].digest}").status_code == 202
    assert robot.delete("/v2/team/app/manifests/v2").status_code == 404  # nothing: nothing recorded

    assert rows(action__startswith="delete") == [
        ("delete_tag", "robot$ci", "team/app", "v2", pushed.manifest.digest),
        ("delete_manifest", "robot$ci", "team/app", "", pushed.manifest.digest),
        ("delete_blob", "robot$ci", "team/app", "", pushed.layers[0].digest),
    ]


def test_a_push_that_fails_records_nothing(robot: Client) -> None:
    pushed = oci.image("incomplete")
    response = oci.put_manifest(robot, "team/app", "v1", pushed.manifest)  # its blobs were never pushed

    assert response.status_code == 400
    assert rows(action="push") == []


def test_it_records_logins_and_failed_logins_with_the_address() -> None:
    access.user("alice")
    client = Client(REMOTE_ADDR="198.51.100.1")
    access.token(client, "repository:alice/app:pull", headers=access.basic("alice"))
    refused = client.get("/token", {"service": "crow-test"}, headers=access.basic("alice", "wrong"))
    assert refused.status_code == 401
    refused = client.get("/v2/alice/app/tags/list", headers=access.basic("mallory\x00", "x"))
    assert refused.status_code == 401

    logins = AuditEvent.objects.filter(action__startswith="login").order_by("id")
    assert [(e.action, e.actor, e.address) for e in logins] == [
        ("login", "alice", "198.51.100.1"),
        ("login_failed", "alice", "198.51.100.1"),
        ("login_failed", "mallory?", "198.51.100.1"),
    ]


def test_it_records_the_address_a_trusted_proxy_saw_and_only_from_it(settings) -> None:
    settings.CROW_TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)
    access.user("alice")
    forwarded = {**access.basic("alice", "wrong"), "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    assert Client(REMOTE_ADDR="10.0.0.2").get("/v2/", headers=forwarded).status_code == 401
    assert Client(REMOTE_ADDR="192.0.2.9").get("/v2/", headers=forwarded).status_code == 401

    failed = AuditEvent.objects.filter(action="login_failed").order_by("id")
    assert [event.address for event in failed] == ["203.0.113.7", "192.0.2.9"]


def test_it_records_access_rule_changes_through_the_api_with_the_caller(staff: Client) -> None:
    access.user("bob")
    grant = staff.post(
        "/api/grants/",
        {"pattern": "team/*", "user": "bob", "actions": ["pull", "push"]},
        content_type="application/json",
    )
    public = staff.post("/api/public/", {"pattern": "pub/*"}, content_type="application/json")
    robot = {"name": "deploy", "patterns": ["team/*"], "actions": ["pull"]}
    assert staff.post("/api/robots/", robot, content_type="application/json").status_code == 201
    assert staff.delete(f"/api/grants/{grant.json()['id']}/").status_code == 204
    assert staff.delete(f"/api/public/{public.json()['id']}/").status_code == 204
    assert staff.delete("/api/robots/deploy/").status_code == 204

    changes = AuditEvent.objects.exclude(action__startswith="login").order_by("id")
    assert [(e.action, e.actor) for e in changes] == [
        ("grant_save", "operator"),
        ("public_save", "operator"),
        ("robot_create", "operator"),
        ("grant_delete", "operator"),
        ("public_delete", "operator"),
        ("robot_revoke", "operator"),
    ]
    assert changes[0].detail == {
        "pattern": "team/*",
        "actions": ["pull", "push"],
        "user": "bob",
        "group": None,
    }
    assert changes[2].detail["robot"] == "robot$deploy"


def test_gc_records_what_retention_and_collection_delete_and_prunes_old_audit_rows(
    robot: Client, settings
) -> None:
    pushed = oci.image("old")
    oci.push_image(robot, "team/app", pushed, "v1")
    long_ago = timezone.now() - timedelta(days=30)
    Tag.objects.update(updated=long_ago)
    RetentionRule.objects.create(pattern="team/*", max_age_days=7, untagged_after_days=0)
    settings.CROW_AUDIT_RETENTION_DAYS = 10
    AuditEvent.objects.filter(action="login").update(time=long_ago)  # past the audit retention

    call_command("gc", "--grace-period", "0s", verbosity=0)

    recorded = rows(actor__startswith="system:")
    assert recorded[:2] == [
        ("delete_tag", "system:retention", "team/app", "v1", ""),
        ("delete_manifest", "system:gc", "team/app", "", pushed.manifest.digest),
    ]
    assert sorted(recorded[2:]) == sorted(
        ("delete_blob", "system:gc", "", "", b.digest) for b in pushed.blobs
    )
    assert not AuditEvent.objects.filter(action="login").exists()
    assert AuditEvent.objects.filter(action="push").exists()


# --- GET /api/audit/ -------------------------------------------------------------------


def _pushes(client: Client, name: str, count: int) -> None:
    for n in range(count):
        oci.push_image(client, name, oci.image(f"{name}-{n}"), f"v{n}")


def test_the_api_lists_newest_first_and_pages(robot: Client, staff: Client) -> None:
    _pushes(robot, "team/app", 5)

    first = staff.get("/api/audit/", {"action": "push", "page_size": 2}).json()
    second = staff.get(first["next"]).json()
    third = staff.get(second["next"]).json()

    tags = [e["reference"] for page in (first, second, third) for e in page["results"]]
    assert tags == ["v4", "v3", "v2", "v1", "v0"]
    assert third["next"] is None
    assert first["results"][0]["actor"] == "robot$ci" and first["results"][0]["address"] == "192.0.2.8"


def test_the_api_filters_by_repository_action_actor_and_time(
    robot: Client, alice: Client, staff: Client
) -> None:
    _pushes(robot, "team/app", 1)
    _pushes(robot, "team/other", 1)
    _pushes(alice, "alice/app", 1)
    AuditEvent.objects.filter(repository="team/other").update(time=timezone.now() - timedelta(days=2))
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()

    def listed(**params: str) -> list[tuple[str, str]]:
        response = staff.get("/api/audit/", params)
        assert response.status_code == 200, response.content
        return [(e["repository"], e["action"]) for e in response.json()["results"]]

    assert listed(repository="team/app", action="push") == [("team/app", "push")]
    assert {name for name, _ in listed(actor="alice")} == {"alice/app"}
    assert ("team/other", "push") not in listed(since=yesterday)
    assert set(listed(until=yesterday)) == {("team/other", "push"), ("team/other", "create_repository")}
    assert staff.get("/api/audit/", {"since": "yesterday"}).status_code == 400


def test_a_user_reads_only_their_own_namespace_and_gets_403_elsewhere(robot: Client, alice: Client) -> None:
    _pushes(robot, "team/app", 1)
    _pushes(alice, "alice/app", 1)
    alice.force_login(get_user_model().objects.get(username="alice"))

    assert alice.get("/api/audit/", {"repository": "team/app"}).status_code == 403
    mine = alice.get("/api/audit/").json()["results"]
    assert mine and {e["repository"] for e in mine} == {"alice/app"}
    assert alice.get("/api/audit/", {"repository": "alice/app"}).status_code == 200
    assert Client().get("/api/audit/").status_code in (401, 403)
