"""Webhooks: ``/api/webhooks/``, the outbox written with the event, delivery, signature, retries, failure."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from registry.events import delivery, dispatch
from registry.events.models import AuditEvent, Delivery, Webhook
from tests import access, oci
from tests.receiver import Receiver

pytestmark = [pytest.mark.auth, pytest.mark.django_db]

SECRET = "s3cret"


@pytest.fixture(autouse=True)
def secured(settings, tmp_path) -> None:
    access.secure(settings, tmp_path)
    settings.CROW_WEBHOOK_TIMEOUT = 2


@pytest.fixture
def staff() -> Client:
    client = Client(REMOTE_ADDR="203.0.113.5")
    client.force_login(access.user("operator", is_staff=True))
    return client


def hook(url: str, events: list[str] | None = None, patterns: list[str] | None = None) -> Webhook:
    return Webhook.objects.create(
        url=url, secret=SECRET, events=events or ["push", "delete"], patterns=patterns or ["team/*"]
    )


def test_staff_create_list_and_delete_webhooks_and_never_read_the_secret_back(staff: Client) -> None:
    created = staff.post(
        "/api/webhooks/",
        {"url": "http://hooks.example/in", "secret": SECRET, "events": ["push"], "patterns": ["team/*"]},
        content_type="application/json",
    )

    assert created.status_code == 201, created.content
    webhook = created.json()
    assert "secret" not in webhook and webhook["events"] == ["push"] and webhook["enabled"] is True
    assert [w["url"] for w in staff.get("/api/webhooks/").json()["results"]] == ["http://hooks.example/in"]
    assert "secret" not in staff.get(f"/api/webhooks/{webhook['id']}/").json()
    assert staff.delete(f"/api/webhooks/{webhook['id']}/").status_code == 204
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"url": "ftp://hooks.example/in", "secret": SECRET, "events": ["push"], "patterns": ["team/*"]},
        {"url": "http://hooks.example/in", "secret": "", "events": ["push"], "patterns": ["team/*"]},
        {"url": "http://hooks.example/in", "secret": SECRET, "events": ["pull"], "patterns": ["team/*"]},
        {"url": "http://hooks.example/in", "secret": SECRET, "events": [], "patterns": ["team/*"]},
        {"url": "http://hooks.example/in", "secret": SECRET, "events": ["push"], "patterns": ["Not A Name"]},
    ],
)
def test_it_refuses_bad_webhooks(staff: Client, bad: dict) -> None:
    assert staff.post("/api/webhooks/", bad, content_type="application/json").status_code == 400


def test_only_staff_manage_webhooks() -> None:
    client = Client()
    client.force_login(access.user("alice"))
    body = {"url": "http://hooks.example/in", "secret": SECRET, "events": ["push"], "patterns": ["alice/*"]}

    assert client.post("/api/webhooks/", body, content_type="application/json").status_code == 403
    assert client.get("/api/webhooks/").status_code == 403


def test_a_push_is_delivered_signed_with_the_reference_registrys_envelope(receiver: Receiver) -> None:
    hook(receiver.url)
    access.user("alice", is_staff=True)
    alice = Client(headers=access.basic("alice"), REMOTE_ADDR="192.0.2.7")
    pushed = oci.image("hooked")
    oci.push_image(alice, "team/app", pushed, "v1")

    call_command("deliver_webhooks", "--once", verbosity=0)

    (got,) = receiver.wait_for(1)
    assert got.signed_with(SECRET) and not got.signed_with("another secret")
    assert got.headers["Content-Type"] == "application/vnd.docker.distribution.events.v1+json"
    event = got.event
    assert got.headers["X-Crow-Event"] == event["id"] == str(AuditEvent.objects.get(action="push").event_id)
    assert event["action"] == "push" and event["actor"] == {"name": "alice"}
    assert event["request"]["addr"] == "192.0.2.7"
    assert event["target"] == {
        "repository": "team/app",
        "tag": "v1",
        "digest": pushed.manifest.digest,
        "mediaType": pushed.manifest.media_type,
        "size": len(pushed.manifest.data),
        "length": len(pushed.manifest.data),
    }
    assert event["timestamp"].endswith("Z") and event["source"]["addr"]
    assert Delivery.objects.get().status == Delivery.DELIVERED


def test_only_subscribed_events_on_matching_repositories_are_delivered(receiver: Receiver) -> None:
    deletes = hook(receiver.url, events=["delete"], patterns=["team/*"])
    hook(receiver.url, events=["push"], patterns=["other/*"])
    access.user("alice", is_staff=True)
    alice = Client(headers=access.basic("alice"))
    pushed = oci.image("filtered")
    oci.push_image(alice, "team/app", pushed, "v1")
    assert alice.delete("/v2/team/app/manifests/v1").status_code == 202

    call_command("deliver_webhooks", "--once", verbosity=0)

    (got,) = receiver.wait_for(1)
    assert got.event["action"] == "delete" and got.event["target"]["tag"] == "v1"
    assert list(Delivery.objects.values_list("webhook", "action")) == [(deletes.id, "delete_tag")]
    assert not AuditEvent.objects.filter(pending=True).exists()


def test_a_receiver_that_is_down_gets_it_when_it_is_back(receiver: Receiver) -> None:
    hook(receiver.url)
    AuditEvent.objects.create(
        action="push", actor="alice", repository="team/app", reference="v1", pending=True
    )
    receiver.stop()

    dispatch.dispatch()
    assert delivery.deliver_due() == 1
    pending = Delivery.objects.get()
    assert pending.status == Delivery.PENDING and pending.attempts == 1 and pending.last_status is None
    assert "Connection refused" in pending.last_error
    assert delivery.deliver_due() == 0  # backing off: not due again yet
    assert delivery.deliver_due(timezone.now() + timedelta(seconds=1.5)) == 1  # the second try: 2 s next
    assert Delivery.objects.get().next_attempt - Delivery.objects.get().last_attempt >= timedelta(seconds=2)

    receiver.start()
    assert delivery.deliver_due(timezone.now() + timedelta(seconds=5)) == 1

    (got,) = receiver.wait_for(1)
    assert got.signed_with(SECRET) and got.event["target"]["repository"] == "team/app"
    done = Delivery.objects.get()
    assert done.status == Delivery.DELIVERED and done.attempts == 3 and done.last_status == 200
    assert done.last_error == ""


def test_a_delivery_fails_for_good_after_its_attempts(receiver: Receiver, settings) -> None:
    settings.CROW_WEBHOOK_MAX_ATTEMPTS = 2
    settings.CROW_WEBHOOK_RETRY_MAX = 0
    receiver.status = 500
    hook(receiver.url)
    AuditEvent.objects.create(action="delete_tag", actor="alice", repository="team/app", pending=True)

    dispatch.dispatch()
    delivery.deliver_due()
    delivery.deliver_due(timezone.now() + timedelta(seconds=1))

    failed = Delivery.objects.get()
    assert failed.status == Delivery.FAILED and failed.attempts == 2
    assert failed.last_status == 500 and failed.last_error.startswith("HTTP 500")
    assert delivery.deliver_due(timezone.now() + timedelta(days=1)) == 0
    assert len(receiver.received) == 2


def test_a_redirect_is_a_failure_not_a_get(receiver: Receiver) -> None:
    receiver.status = 302
    hook(receiver.url)
    AuditEvent.objects.create(action="push", actor="alice", repository="team/app", pending=True)

    dispatch.dispatch()
    delivery.deliver_due()

    assert Delivery.objects.get().last_status == 302 and Delivery.objects.get().status == Delivery.PENDING


def test_a_webhook_hears_only_of_events_after_its_creation_and_each_once(receiver: Receiver) -> None:
    AuditEvent.objects.create(action="push", actor="alice", repository="team/app", pending=True)
    hook(receiver.url)
    AuditEvent.objects.create(action="push", actor="bob", repository="team/app", pending=True)

    assert dispatch.dispatch() == 2
    assert dispatch.dispatch() == 0

    assert list(Delivery.objects.values_list("body", flat=True))[0].count('"bob"') == 1
    assert Delivery.objects.count() == 1


def test_the_admin_shows_the_log_and_the_delivery_history_read_only(receiver: Receiver) -> None:
    hook(receiver.url)
    AuditEvent.objects.create(action="push", actor="alice", repository="team/app", pending=True)
    dispatch.dispatch()
    delivery.deliver_due()
    client = Client()
    client.force_login(access.user("root", is_staff=True, is_superuser=True))

    log = client.get("/admin/registry/auditevent/", {"action": "push"})
    history = client.get("/admin/registry/delivery/", {"status": "delivered"})

    assert log.status_code == 200 and b"team/app" in log.content
    assert history.status_code == 200 and b"delivered" in history.content
    assert client.get("/admin/registry/auditevent/add/").status_code == 403
    assert client.get("/admin/registry/webhook/add/").status_code == 200
