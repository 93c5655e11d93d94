"""The delivery worker waits for work: with no enabled webhook it makes no round for ``IDLE_WAIT``
seconds, and a webhook created meanwhile wakes it (a notice on PostgreSQL, a cheap read on SQLite),
so the next push is delivered within seconds; with one, pushes are delivered at the usual pace."""

import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client

from registry.events import wakeups, worker
from registry.events.models import Webhook
from tests import oci
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cret"
PROMPTLY = 10.0  # seconds: a poll (1 s) and a round, with room for a loaded machine (IDLE_WAIT is 30)


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch, settings) -> list[float]:
    """When the worker ran each round (``worker.run_once``)."""
    settings.CROW_WEBHOOK_POLL = 1
    settings.CROW_WEBHOOK_TIMEOUT = 2
    ran: list[float] = []
    run_once = worker.run_once

    def counted() -> int:
        ran.append(time.monotonic())
        return run_once()

    monkeypatch.setattr(worker, "run_once", counted)
    return ran


@pytest.fixture
def running(rounds: list[float]) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop.is_set,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(wakeups.SLICE + 10)
    assert not thread.is_alive(), "the worker did not stop"


def test_an_idle_worker_without_webhooks_waits_until_one_is_created(
    rounds: list[float], running: None, receiver: Receiver, client: Client
) -> None:
    time.sleep(3)
    assert len(rounds) == 1, "no round while no webhook is enabled"

    Webhook.objects.create(url=receiver.url, secret=SECRET, events=["push"], patterns=["team/*"])
    oci.push_image(client, "team/app", oci.image("woken"), "v1")

    (got,) = receiver.wait_for(1, timeout=PROMPTLY)
    assert got.signed_with(SECRET) and got.event["target"]["tag"] == "v1"
    assert rounds[-1] - rounds[0] < wakeups.IDLE_WAIT


def test_a_worker_with_a_webhook_delivers_each_push_at_the_usual_pace(
    running: None, receiver: Receiver, client: Client
) -> None:
    Webhook.objects.create(url=receiver.url, secret=SECRET, events=["push"], patterns=["team/*"])

    for n, tag in enumerate(("v1", "v2", "v3"), start=1):
        oci.push_image(client, "team/app", oci.image(tag), tag)
        assert receiver.wait_for(n, timeout=PROMPTLY)[-1].event["target"]["tag"] == tag


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite sends no notices")
def test_a_webhook_created_before_the_workers_first_wait_is_heard() -> None:
    # The worker makes a listener, then looks at the webhooks, then waits: one created between the
    # look and the wait must wake it (it was not, once: the LISTEN came only with the first wait).
    heard = wakeups.listener()
    assert heard is not None
    try:
        Webhook.objects.create(url="http://127.0.0.1:9/", secret=SECRET, events=["push"], patterns=["*"])
        assert heard.heard(5.0)
    finally:
        heard.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite sends no notices")
def test_a_listener_that_lost_its_connection_wakes_its_worker_once_listening_again() -> None:
    heard = wakeups.listener()
    assert heard is not None
    try:
        heard.close()  # as when the connection breaks: what changes now goes unheard
        Webhook.objects.create(url="http://127.0.0.1:9/", secret=SECRET, events=["push"], patterns=["*"])
        assert heard.heard(5.0)  # listening again: the worker looks for itself
        assert not heard.heard(0.5)  # and then only a notice wakes it
    finally:
        heard.close()
