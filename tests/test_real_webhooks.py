"""Webhooks and the audit log against a real server, real skopeo pushes and a real receiver.

The server's own delivery worker (a thread of one of its workers: ``crow.webhooks``)
delivers a push and a delete within seconds, and another worker takes it over when
the one running it is killed; a ``manage.py deliver_webhooks`` killed with ``kill -9`` in the middle
of a POST loses nothing: once its lease ends, a new worker sends the same
event again (at least once, with the same event id).
"""

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from crow import webhooks
from registry.events.models import Delivery, Webhook
from tests import ocilayout
from tests.processes import spawn, stop
from tests.receiver import Receiver
from tests.server import ROOT, Server
from tests.skopeo import Skopeo

SECRET = "real-secret"
WORKER_TIMEOUT = "3s"  # a claimed delivery's lease is 2 x 3 + 5 = 11 s


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"CROW_WEBHOOK_WORKER": "1", "CROW_WEBHOOK_TIMEOUT": "2s"}


def _api(server: Server) -> requests.Session:
    session = requests.Session()
    token = Token.objects.create(user=get_user_model().objects.get(username="ci-owner"))
    session.headers["Authorization"] = f"Token {token.key}"
    return session


def test_the_servers_worker_delivers_a_push_and_a_delete_and_the_audit_api_shows_them(
    skopeo: Skopeo, registry_server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    api = _api(registry_server)
    hook = {"url": receiver.url, "secret": SECRET, "events": ["push", "delete"], "patterns": ["team/*"]}
    assert api.post(f"{registry_server.url}/api/webhooks/", json=hook, timeout=10).status_code == 201
    digest = ocilayout.write_image(tmp_path / "in", "v1")

    skopeo.push(tmp_path / "in", "v1", f"{registry_server.host}/team/app:v1")
    (pushed,) = receiver.wait_for(1)
    skopeo.run(
        "delete",
        f"--creds={skopeo.creds}",
        "--tls-verify=false",
        f"docker://{registry_server.host}/team/app:v1",
    )
    deleted = receiver.wait_for(2)[1]

    assert pushed.signed_with(SECRET) and deleted.signed_with(SECRET)
    assert pushed.event["action"] == "push" and pushed.event["actor"] == {"name": "robot$ci"}
    assert pushed.event["target"]["tag"] == "v1" and pushed.event["target"]["digest"] == digest
    assert pushed.event["request"]["addr"] == "127.0.0.1"
    assert deleted.event["action"] == "delete" and deleted.event["target"]["digest"] == digest
    log = api.get(f"{registry_server.url}/api/audit/", params={"actor": "robot$ci"}, timeout=10).json()
    actions = [(e["action"], e["repository"], e["digest"]) for e in log["results"] if e["action"] != "login"]
    assert actions[:2] == [("delete_manifest", "team/app", digest), ("push", "team/app", digest)]
    assert "login" in [e["action"] for e in log["results"]]  # skopeo logged in at the token service


def _delivering(server: Server) -> list[int]:
    """The pids of the server's processes with a thread named ``crow-webhooks``: those delivering."""
    bind = f"CROW_BIND={server.env['CROW_BIND']}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if bind in (proc / "environ").read_bytes().split(b"\0") and any(
                (task / "comm").read_bytes().strip() == webhooks.THREAD_NAME.encode()
                for task in (proc / "task").iterdir()
            ):
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def _one_delivering(server: Server, other_than: int | None = None, timeout: float = 20) -> int:
    """The one process delivering, once there is exactly one (and it is not ``other_than``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = _delivering(server)
        if len(found) == 1 and found[0] != other_than:
            return found[0]
        assert time.monotonic() < deadline, f"processes delivering: {found}, not one other than {other_than}"
        time.sleep(0.2)


def test_one_worker_delivers_and_another_takes_over_when_it_is_killed(
    skopeo: Skopeo, registry_server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    # Two granian workers, each with a seat: one delivers, never both (SQLite takes one deliverer).
    Webhook.objects.create(url=receiver.url, secret=SECRET, events=["push"], patterns=["team/*"])
    delivering = _one_delivering(registry_server)
    time.sleep(2 * webhooks.TAKEOVER)  # the other worker has tried to take it, and failed
    assert _delivering(registry_server) == [delivering]

    os.kill(delivering, signal.SIGKILL)
    _one_delivering(registry_server, other_than=delivering)  # the other worker, or the killed one's successor

    ocilayout.write_image(tmp_path / "in", "v1")
    skopeo.push(tmp_path / "in", "v1", f"{registry_server.host}/team/app:v1")
    (got,) = receiver.wait_for(1)
    assert got.signed_with(SECRET) and got.event["target"]["tag"] == "v1"


def _worker(server: Server) -> "os.PathLike":
    env = {**server.env, "CROW_WEBHOOK_TIMEOUT": WORKER_TIMEOUT, "CROW_WEBHOOK_POLL": "1s"}
    return spawn([sys.executable, "manage.py", "deliver_webhooks"], cwd=ROOT, env=env)


def _delivered(timeout: float) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = Delivery.objects.filter(status=Delivery.DELIVERED).first()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not delivered after {timeout}s: {list(Delivery.objects.values())}")


@pytest.mark.parametrize("server_env", [{"CROW_WEBHOOK_WORKER": "0"}])
def test_a_worker_killed_mid_delivery_loses_nothing(
    skopeo: Skopeo, registry_server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    Webhook.objects.create(url=receiver.url, secret=SECRET, events=["push"], patterns=["team/*"])
    digest = ocilayout.write_image(tmp_path / "in", "v1")
    skopeo.push(tmp_path / "in", "v1", f"{registry_server.host}/team/app:v1")
    receiver.hold.set()  # the receiver takes the POST and does not answer yet

    first = _worker(registry_server)
    try:
        receiver.wait_for(1, answered=False)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        stop(first)
    receiver.hold.clear()
    assert Delivery.objects.get().status == Delivery.PENDING  # claimed, never marked

    second = _worker(registry_server)
    try:
        done = _delivered(timeout=40)
    finally:
        stop(second)

    events = {got.event["id"] for got in receiver.received}
    assert len(receiver.received) >= 2 and events == {str(done.event_id)}  # at least once, one id
    assert all(
        got.signed_with(SECRET) and got.event["target"]["digest"] == digest for got in receiver.received
    )
    assert done.attempts == 1 and done.last_status == 200
