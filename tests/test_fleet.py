"""A fleet: three replicas behind HAProxy, sharing one PostgreSQL, one bucket and one Redis.

The replicas are ``python -m crow.serve`` processes with the same secret key and token signing key
(each its own var directory, so no key file is shared by accident); HAProxy runs the shipped
``deploy/haproxy.cfg`` (``tests.haproxy.render``: only addresses differ). skopeo pushes and pulls
through HAProxy with authentication on. One replica is killed (SIGKILL, its whole process group, as
a crashed host) in the middle of a large push, which the client's retry completes (skopeo's
``--retry-times`` if it takes the error for transient, else a second run, as a CI job retries); another
is stopped (SIGTERM to its main process, as ``docker stop``) while a slow upload runs on it: the
upload completes, new requests go to the others, and the process exits within its drain bound.

Servers start once for the module (minutes otherwise); each test starts from three replicas that
HAProxy sees UP, restarting any a previous test stopped. The module's rows are committed (the
servers are other processes) and flushed at its end. PostgreSQL only: SQLite is one host's file.
"""

import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from registry.auth import robots
from registry.auth.keys import generate_pem
from registry.auth.models import DELETE, PULL, PUSH
from tests import haproxy, ocilayout, processes, sharedcache
from tests.fleet import Fleet, Replica
from tests.s3server import S3Server, fresh_bucket
from tests.server import REPOSITORIES, database_url, free_port, open_environment, stop
from tests.skopeo import Skopeo
from tests.tcpproxy import TcpProxy, proxy_to

pytestmark = [
    pytest.mark.realserver,
    # For pytest-django to create the test database; the module's own rows are committed apart.
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="replicas share PostgreSQL, not a SQLite file"
    ),
]

MiB = 1024 * 1024
LARGE_LAYER = 200 * MiB
UPLINK_RATE = 50 * MiB  # bytes a second from the client to the load balancer, in the kill test
TIMEOUT = 60
NAME = "team/app"
ADMIN = ("fleet-admin", "fleet-admin-password")
LOGIN_FAILURES = 3  # CROW_LOGIN_FAILURES: low, for the shared count to show in a few tries
GRACEFUL_TIMEOUT = 10  # CROW_GRACEFUL_TIMEOUT, seconds: the drain bound


@pytest.fixture(scope="module")
def fleet_accounts(django_db_setup: None, django_db_blocker) -> Iterator[dict[str, str]]:
    """The robot skopeo logs in as, an administrator and a victim robot, committed; flushed at the end."""
    with django_db_blocker.unblock():
        owner = get_user_model().objects.create_superuser(ADMIN[0], email="", password=ADMIN[1])
        robot, secret = robots.create(owner, "fleet", REPOSITORIES, frozenset({PULL, PUSH, DELETE}))
        victim, victim_secret = robots.create(owner, "victim", REPOSITORIES, frozenset({PULL}))
        try:
            yield {
                "username": robot.username,
                "password": secret,
                "victim": victim.username,
                "victim_password": victim_secret,
                "database_url": database_url(connection.settings_dict),
            }
        finally:
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="module")
def haproxy_path(require_client: Callable[[str], str]) -> str:
    return require_client("haproxy")


@pytest.fixture(scope="module")
def fleet(
    haproxy_path: str,  # first: without haproxy, nothing else starts
    fleet_accounts: dict[str, str],
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    with ExitStack() as stack:
        bucket = stack.enter_context(fresh_bucket(s3_server))
        prefix = stack.enter_context(sharedcache.key_prefix())
        shared = {
            **s3_server.environment(bucket),
            "DATABASE_URL": fleet_accounts["database_url"],
            "CROW_SECRET_KEY": os.urandom(32).hex(),
            "CROW_TOKEN_KEY": generate_pem(),
            "CROW_REDIS_URL": sharedcache.REDIS_URL,
            "CROW_REDIS_KEY_PREFIX": prefix,
            "CROW_AUTH_DISABLED": "0",
            "CROW_TRUSTED_PROXIES": "127.0.0.1",
            "CROW_LOGIN_FAILURES": str(LOGIN_FAILURES),
            "CROW_GRACEFUL_TIMEOUT": f"{GRACEFUL_TIMEOUT}s",
            "CROW_WORKERS": "1",
            "CROW_THREADS": "4",
        }
        replicas = []
        for number in (1, 2, 3):
            directory = root / f"crow-{number}"  # its own var directory: no key file shared by accident
            env = open_environment(directory, directory / "blobs", **shared)
            replica = Replica(f"crow-{number}", env, root)
            replica.start()
            stack.callback(lambda replica=replica: replica.process and stop(replica.process))
            replicas.append(replica)
        port = free_port()
        config = root / "haproxy.cfg"
        config.write_text(
            haproxy.render(
                haproxy.SHIPPED.read_text(),
                f"127.0.0.1:{port}",
                {replica.name: replica.env["CROW_BIND"] for replica in replicas},
                root / "haproxy.sock",
            )
        )
        balancer = stack.enter_context(haproxy.running(haproxy_path, config, port, root / "haproxy.log"))
        yield Fleet(
            balancer,
            replicas,
            fleet_accounts["username"],
            fleet_accounts["password"],
            bucket,
            s3_server,
            prefix,
            (fleet_accounts["victim"], fleet_accounts["victim_password"]),
        )


@pytest.fixture
def up(fleet: Fleet) -> Fleet:
    """The fleet with every replica running and UP in HAProxy's eyes."""
    fleet.ensure_all_up()
    return fleet


@pytest.fixture(scope="module")
def skopeo(require_client: Callable[[str], str], fleet: Fleet) -> Skopeo:
    return Skopeo(require_client("skopeo"), creds=fleet.credentials)


def test_it_round_trips_a_multi_platform_image_through_the_load_balancer(
    up: Fleet, skopeo: Skopeo, tmp_path: Path
) -> None:
    digest = ocilayout.write_index(tmp_path / "in", "multi")
    skopeo.round_trip(tmp_path / "in", "multi", digest, f"{up.balancer.host}/{NAME}:multi", "--all")
    # Round-robin: the push's and pull's requests went to every replica.
    assert {server for server, _ in up.balancer.served_by(f"/v2/{NAME}/")} == {"crow-1", "crow-2", "crow-3"}


def uploaded_parts(s3: S3Server, bucket: str) -> int:
    """Parts the bucket holds of multipart uploads in progress: how far a large push has come."""
    client = s3.client()
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return sum(
        len(client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]).get("Parts", []))
        for upload in uploads
    )


# How a push broken by a dead replica ends, as skopeo 1.9.3 reports it. Its --retry-times retries
# only errors containers/common 0.50 calls transient (a refused or reset connection, an OCI error
# body): HAProxy closes the client's connection when the replica holding a request dies, and skopeo
# sees a broken pipe (or its own closed socket) while still sending the layer, which it does not retry.
BROKEN_UPLOAD = ("broken pipe", "use of closed network connection", "connection reset by peer", "EOF")


@pytest.fixture
def uplink(up: Fleet) -> Iterator[TcpProxy]:
    """The client's link to the load balancer, slowed (about 4 s for the large layer) so that a kill
    lands in the middle of the upload however fast the machine: unthrottled, a quiet one pushed the
    layer before a look saw it under way."""
    host, port = up.balancer.host.split(":")
    with proxy_to(host, int(port)) as link:
        link.rate = UPLINK_RATE
        yield link


def test_a_large_push_survives_a_replica_killed_in_its_middle(
    up: Fleet, skopeo: Skopeo, tmp_path: Path, uplink: TcpProxy
) -> None:
    digest = ocilayout.write_large_image(tmp_path / "in", "large", LARGE_LAYER)
    reference = f"127.0.0.1:{uplink.port}/{NAME}:large"
    command = skopeo.command(*skopeo.push_arguments(tmp_path / "in", "large", reference, "--retry-times=3"))
    output = tmp_path / "skopeo.log"
    began = time.monotonic()
    with open(output, "wb") as log:
        push = processes.spawn(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Under way: a few 5 MiB parts are in the bucket, and one replica holds the upload's connection.
        deadline = time.monotonic() + TIMEOUT
        while uploaded_parts(up.s3, up.bucket) < 3:
            assert push.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "the upload never got under way"
            time.sleep(0.05)
        holders = [name for name, row in up.balancer.servers().items() if int(row["scur"]) > 0]
        assert holders, up.balancer.servers()
        for holder in holders:  # the whole replica, as a crashed host
            os.killpg(up.replica(holder).process.pid, signal.SIGKILL)
        killed = time.monotonic() - began
        push.wait(TIMEOUT * 3)
    finally:
        stop(push)
    first = output.read_text()
    if push.returncode != 0:  # the client's retry: the job runs the push again, on the replicas left
        assert "writing blob" in first and any(error in first for error in BROKEN_UPLOAD), first
        result = processes.run(command, capture_output=True, timeout=TIMEOUT * 3)
        assert result.returncode == 0, result.stderr.decode()
    elapsed = time.monotonic() - began
    print(
        f"\n{LARGE_LAYER // MiB} MiB push: {elapsed:.1f}s, {', '.join(holders)} killed at {killed:.1f}s, "
        f"skopeo {'completed' if push.returncode == 0 else 'failed, then a second run completed'}:\n{first}"
    )

    skopeo.pull(reference, tmp_path / "out", "large")
    assert ocilayout.tagged(tmp_path / "out", "large") == digest
    for path in (tmp_path / "in" / "blobs" / "sha256").iterdir():
        with open(tmp_path / "out" / "blobs" / "sha256" / path.name, "rb") as pulled:
            assert hashlib.file_digest(pulled, "sha256").hexdigest() == path.name


def slow_body(total: int, pieces: int, pause: float, under_way: threading.Event) -> Iterator[bytes]:
    """``total`` bytes in ``pieces``, ``pause`` seconds apart; ``under_way`` is set after the first."""
    piece = total // pieces
    for number in range(pieces):
        yield bytes([number % 256]) * piece
        under_way.set()
        time.sleep(pause)


def test_a_replica_stopped_with_sigterm_finishes_its_upload_while_the_others_take_new_requests(
    up: Fleet,
) -> None:
    draining = up.replica("crow-2")
    bearer = {"Authorization": f"Bearer {up.token(draining, NAME)}"}
    started_upload = requests.post(
        f"{draining.url}/v2/{NAME}/blobs/uploads/", headers=bearer, timeout=TIMEOUT
    )
    assert started_upload.status_code == 202, started_upload.text
    total, pieces = 4 * MiB, 16
    under_way = threading.Event()
    answers: list[requests.Response] = []

    def send() -> None:  # straight to the replica: the request in flight when it is told to stop
        answers.append(
            requests.patch(
                urljoin(draining.url, started_upload.headers["Location"]),
                data=slow_body(total, pieces, 0.25, under_way),  # about 4 s
                headers={**bearer, "Content-Type": "application/octet-stream"},
                timeout=TIMEOUT,
            )
        )

    upload = threading.Thread(target=send)
    upload.start()
    assert under_way.wait(TIMEOUT)
    draining.process.send_signal(signal.SIGTERM)  # to the main process, as `docker stop` does
    signalled = time.monotonic()
    draining.wait_until_refused()  # it stopped listening, its upload still running
    assert upload.is_alive()
    probes = []  # new requests through HAProxy while the replica drains
    while upload.is_alive():
        probes.append(requests.get(f"{up.balancer.url}/v2/?probe=drain", headers=bearer, timeout=TIMEOUT))
        time.sleep(0.1)
    upload.join()
    draining.process.wait(GRACEFUL_TIMEOUT + 5)
    exited = time.monotonic() - signalled

    (answer,) = answers
    assert answer.status_code == 202, answer.text
    assert answer.headers["Range"] == f"0-{total - 1}"
    assert draining.process.returncode == 0
    assert exited < GRACEFUL_TIMEOUT  # it left once its request was answered, not at the bound
    assert len(probes) > 10 and {probe.status_code for probe in probes} == {200}
    served = up.balancer.served_by("?probe=drain")
    assert {server for server, _ in served} == {"crow-1", "crow-3"}
    # Until HAProxy's checks took crow-2 out, its turns were refused and sent elsewhere (redispatch).
    assert any(retries.startswith("+") for _, retries in served), served
    up.balancer.wait_for(lambda servers: servers["crow-2"]["status"].startswith("DOWN"), 10, "crow-2 DOWN")
    # The other replicas finish the upload the stopped one took.
    data = b"".join(chunk for chunk in slow_body(total, pieces, 0, threading.Event()))
    finished = requests.put(
        urljoin(up.balancer.url, answer.headers["Location"]),
        params={"digest": "sha256:" + hashlib.sha256(data).hexdigest()},
        headers=bearer,
        timeout=TIMEOUT,
    )
    assert finished.status_code == 201, finished.text


def test_a_token_from_one_replica_is_taken_by_the_others(up: Fleet) -> None:
    issuer, *others = up.replicas
    token = up.token(issuer, NAME)
    for replica in others:
        answer = requests.get(
            f"{replica.url}/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
        assert answer.status_code == 200, answer.text
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")  # the signature checked
    refused = requests.get(
        f"{others[0].url}/v2/", headers={"Authorization": f"Bearer {forged}"}, timeout=TIMEOUT
    )
    assert refused.status_code == 401


def admin_login(replica: Replica) -> requests.Session:
    """A browser's session, logged in at one replica's ``/admin/login/``."""
    browser = requests.Session()
    form = browser.get(f"{replica.url}/admin/login/", timeout=TIMEOUT)
    assert form.status_code == 200
    answer = browser.post(
        f"{replica.url}/admin/login/?next=/admin/",
        data={
            "username": ADMIN[0],
            "password": ADMIN[1],
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            "next": "/admin/",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/", answer.text
    return browser


def test_an_admin_session_from_one_replica_works_on_the_others(up: Fleet) -> None:
    first, *others = up.replicas
    browser = admin_login(first)
    for replica in others:
        page = browser.get(f"{replica.url}/admin/", allow_redirects=False, timeout=TIMEOUT)
        assert page.status_code == 200
        assert ADMIN[0] in page.text  # "Welcome, fleet-admin"
    anonymous = requests.get(f"{others[0].url}/admin/", allow_redirects=False, timeout=TIMEOUT)
    assert anonymous.status_code == 302  # to the login page: the session made the difference


def test_failed_logins_add_up_across_replicas_in_redis(up: Fleet) -> None:
    import redis

    username, secret = up.victim

    def login(replica: Replica, password: str) -> int:
        return requests.get(
            f"{replica.url}/token",
            params={"scope": f"repository:{NAME}:{PULL}"},
            auth=(username, password),
            timeout=TIMEOUT,
        ).status_code

    assert [login(replica, "wrong") for replica in up.replicas[:LOGIN_FAILURES]] == [401] * LOGIN_FAILURES
    # Each replica saw fewer failures than the limit; together they reached it.
    assert {login(replica, secret) for replica in up.replicas} == {429}
    client = redis.Redis.from_url(sharedcache.REDIS_URL)
    try:
        assert list(client.scan_iter(match=f"{up.redis_prefix}:*"))  # counted there, not per process
    finally:
        client.close()
