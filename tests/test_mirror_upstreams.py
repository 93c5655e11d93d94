"""The pull-through cache against an upstream that misbehaves: a small HTTP server each test scripts.

In process (Django's test client), with a real upstream on a loopback port:
wrong digests, rate limits, errors, Basic and token authentication, and what
CRoW keeps (or not) of a blob whose bytes are wrong.
"""

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from django.utils import timezone

from registry import errors
from registry.auth.models import PublicPattern
from registry.events.models import AuditEvent
from registry.mirror import blobs as mirror_blobs
from registry.mirror import routing, upstream
from registry.mirror.models import BlobFetch, MirroredRepository, Upstream
from registry.models import Blob, Manifest, RepositoryBlob
from tests import oci

pytestmark = pytest.mark.django_db(transaction=True)  # the blob is stored by a thread of its own

PREFIX = "up"
PASSWORD = "p4ssw0rd-never-logged"
UNTIL_CLOSE = "X-Until-Close"  # a scripted header: the answer has no Content-Length


@dataclass
class Script:
    """What the fake upstream answers: ``routes`` by path, and every request it saw."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, Authorization
    require: str | None = None  # an Authorization every /v2/ request must carry, else a 401 with challenge
    challenge: str = ""

    def add(self, path: str, body: bytes, status: int = 200, **headers: str) -> None:
        self.routes[path] = (status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


@pytest.fixture
def script() -> Iterator[Script]:
    yield Script()


@pytest.fixture
def fake(script: Script) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, head: bool) -> None:
            path = self.path.split("?")[0]
            authorization = self.headers.get("Authorization", "")
            script.seen.append((self.command, self.path, authorization))
            if path.startswith("/v2/") and script.require is not None and authorization != script.require:
                status, headers, body = 401, {"WWW-Authenticate": script.challenge}, b"{}"
            else:
                status, headers, body = script.routes.get(path, (404, {}, b'{"errors":[]}'))
            self.send_response(status)
            for name, value in headers.items():
                if name != UNTIL_CLOSE:
                    self.send_header(name, value)
            if UNTIL_CLOSE not in headers:  # else HTTP/1.0's body: until the connection closes
                self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(head=True)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(fake: str) -> Iterator[Upstream]:
    routing.invalidate()
    upstream.forget_tokens()
    yield Upstream.objects.create(prefix=PREFIX, url=fake, username="mirror", password=PASSWORD)
    routing.invalidate()


def _image(seed: str) -> tuple[oci.Blob, oci.Blob, oci.Blob]:
    config, layer = oci.config(seed), oci.layer(seed, 4096)
    return config, layer, oci.image_manifest(config, [layer])


def _serve_manifest(script: Script, manifest: oci.Blob, tag: str = "1", digest: str | None = None) -> None:
    headers = {"Content_Type": manifest.media_type, "Docker_Content_Digest": digest or manifest.digest}
    script.add(f"/v2/app/manifests/{tag}", manifest.data, **headers)
    script.add(f"/v2/app/manifests/{manifest.digest}", manifest.data, **headers)


def _error(response) -> dict:
    return json.loads(response.content)["errors"][0]


def test_it_fetches_stores_and_then_serves_a_manifest_without_asking_again(
    client: Client, mirror: Upstream, script: Script
) -> None:
    _, _, manifest = _image("a")
    _serve_manifest(script, manifest)
    response = oci.get_manifest(client, f"{PREFIX}/app", "1")
    assert response.status_code == 200
    assert response.content == manifest.data
    assert response["Docker-Content-Digest"] == manifest.digest
    asked = len(script.seen)
    assert oci.get_manifest(client, f"{PREFIX}/app", manifest.digest).status_code == 200
    assert oci.get_manifest(client, f"{PREFIX}/app", "1").status_code == 200  # trusted
    assert len(script.seen) == asked
    assert MirroredRepository.objects.get(repository__name=f"{PREFIX}/app").upstream == mirror


def test_it_refuses_a_manifest_whose_digest_is_not_what_the_upstream_says(
    client: Client, mirror: Upstream, script: Script
) -> None:
    _, _, manifest = _image("a")
    _serve_manifest(script, manifest, digest=oci.UNKNOWN_DIGEST)
    response = oci.get_manifest(client, f"{PREFIX}/app", "1")
    assert response.status_code == 502
    assert _error(response)["code"] == "UNKNOWN"
    assert not Manifest.objects.exists()

    script.add(f"/v2/app/manifests/{oci.UNKNOWN_DIGEST}", manifest.data, Content_Type=manifest.media_type)
    assert oci.get_manifest(client, f"{PREFIX}/app", oci.UNKNOWN_DIGEST).status_code == 502
    assert not Manifest.objects.exists()


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [(429, 429, "TOOMANYREQUESTS"), (500, 503, "UNKNOWN"), (503, 503, "UNKNOWN")],
)
def test_it_tells_a_miss_while_the_upstream_fails_apart_from_a_missing_image(
    client: Client, mirror: Upstream, script: Script, status: int, expected: int, code: str
) -> None:
    script.add("/v2/app/manifests/1", b"{}", status=status, Retry_After="7")
    response = oci.get_manifest(client, f"{PREFIX}/app", "1")
    assert (response.status_code, _error(response)["code"]) == (expected, code)
    assert response["Retry-After"] == "7"
    response = oci.get_manifest(client, f"{PREFIX}/other", "1")  # the upstream's 404
    assert (response.status_code, _error(response)["code"]) == (404, "NAME_UNKNOWN")


def test_it_streams_a_blob_stores_it_and_serves_it_from_the_store_after(
    client: Client, mirror: Upstream, script: Script
) -> None:
    config, layer, manifest = _image("a")
    _serve_manifest(script, manifest)
    script.add(f"/v2/app/blobs/{layer.digest}", layer.data)
    assert oci.get_manifest(client, f"{PREFIX}/app", "1").status_code == 200

    head = client.head(f"/v2/{PREFIX}/app/blobs/{layer.digest}")  # asks the upstream, stores nothing
    assert (head.status_code, head["Content-Length"]) == (200, str(layer.size))
    assert not Blob.objects.exists()

    response = client.get(f"/v2/{PREFIX}/app/blobs/{layer.digest}")
    assert response.status_code == 200
    assert response["Content-Length"] == str(layer.size)
    assert b"".join(response.streaming_content) == layer.data
    assert RepositoryBlob.objects.filter(repository__name=f"{PREFIX}/app", blob__digest=layer.digest).exists()
    assert not BlobFetch.objects.exists()
    asked = len(script.seen)
    again = client.get(f"/v2/{PREFIX}/app/blobs/{layer.digest}")
    assert b"".join(again.streaming_content) == layer.data
    assert len(script.seen) == asked


def test_requests_waiting_for_another_download_are_few_and_the_next_hear_503(
    client: Client, mirror: Upstream, script: Script, monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    """Another replica holds the download (a live claim): a request waits for it, holding a thread;
    past ``WAITERS`` at once, the next is told to come back at once instead of taking a thread too."""
    _, layer, _ = _image("a")
    script.add(f"/v2/app/blobs/{layer.digest}", layer.data)
    BlobFetch.objects.create(
        digest=layer.digest, claim=uuid.uuid4(), claimed_until=timezone.now() + timedelta(minutes=5)
    )
    settings.CROW_MIRROR_FETCH_WAIT = 0.3
    url = f"/v2/{PREFIX}/app/blobs/{layer.digest}"
    waited = time.monotonic()
    response = client.get(url)  # a free place: it waits (here until CROW_MIRROR_FETCH_WAIT), then 503
    assert time.monotonic() - waited >= 0.3
    assert (response.status_code, response["Retry-After"]) == (503, str(errors.RETRY_AFTER))
    monkeypatch.setattr(mirror_blobs, "_waiters", threading.BoundedSemaphore(1))
    assert mirror_blobs._waiters.acquire(blocking=False)  # the one place taken, by another request
    waited = time.monotonic()
    response = client.get(url)
    assert time.monotonic() - waited < 0.3  # not waited
    assert (response.status_code, _error(response)["code"]) == (503, "UNKNOWN")
    assert "still being downloaded" in _error(response)["message"]
    assert not any(path.startswith("/v2/app/blobs/") for _, path, _ in script.seen)  # one download


def test_it_keeps_nothing_of_a_blob_whose_bytes_do_not_match_its_digest(
    client: Client, mirror: Upstream, script: Script
) -> None:
    _, layer, _ = _image("a")
    script.add(f"/v2/app/blobs/{layer.digest}", b"x" * layer.size)
    response = client.get(f"/v2/{PREFIX}/app/blobs/{layer.digest}")
    assert response.status_code == 200  # the headers went out before the bytes were known to be wrong
    with pytest.raises(mirror_blobs.FetchFailed):
        b"".join(response.streaming_content)
    assert not Blob.objects.exists()
    assert not RepositoryBlob.objects.exists()
    assert not BlobFetch.objects.exists()


def test_it_links_a_blob_stored_already_without_asking_the_upstream(
    client: Client, mirror: Upstream, script: Script
) -> None:
    _, layer, _ = _image("a")
    oci.push_blob(client, "team/app", layer)
    response = client.get(f"/v2/{PREFIX}/app/blobs/{layer.digest}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == layer.data
    assert script.seen == []


def test_it_answers_a_basic_challenge_with_the_upstreams_credentials(
    client: Client, mirror: Upstream, script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    basic = "Basic " + base64.b64encode(f"mirror:{PASSWORD}".encode()).decode()
    script.require, script.challenge = basic, 'Basic realm="upstream"'
    _, _, manifest = _image("a")
    _serve_manifest(script, manifest)
    assert oci.get_manifest(client, f"{PREFIX}/app", "1").status_code == 200
    assert script.seen[-1][2] == basic
    script.require = "Basic wrong"
    response = oci.get_manifest(client, f"{PREFIX}/app", manifest.digest.replace("a", "b", 1)[:71])
    assert response.status_code in (404, 502)
    assert PASSWORD not in caplog.text and basic.split()[1] not in caplog.text


def test_it_follows_the_token_flow_and_keeps_the_token_until_it_expires(
    client: Client, mirror: Upstream, script: Script, fake: str, caplog: pytest.LogCaptureFixture
) -> None:
    script.require = "Bearer t0ken"
    script.challenge = f'Bearer realm="{fake}/token",service="fake",scope="repository:app:pull"'
    script.add("/token", json.dumps({"token": "t0ken", "expires_in": 300}).encode())
    _, _, manifest = _image("a")
    _serve_manifest(script, manifest)
    other = _image("b")[2]
    _serve_manifest(script, other, tag="2")
    assert oci.get_manifest(client, f"{PREFIX}/app", "1").status_code == 200
    assert oci.get_manifest(client, f"{PREFIX}/app", "2").status_code == 200
    tokens = [seen for seen in script.seen if seen[1].startswith("/token")]
    assert len(tokens) == 1  # cached for the second request
    assert "scope=repository%3Aapp%3Apull" in tokens[0][1] and "service=fake" in tokens[0][1]
    assert tokens[0][2] == "Basic " + base64.b64encode(f"mirror:{PASSWORD}".encode()).decode()
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    "answer",
    [
        json.dumps(["t0ken"]).encode(),  # JSON, but no object
        json.dumps({"token": {"nested": 1}}).encode(),
        b"{" + b" " * (2 * 1024 * 1024) + b"}",  # longer than any token answer: not read whole
        b"<html>",
    ],
    ids=["list", "not-a-string", "endless", "not-json"],
)
def test_a_hostile_token_server_gets_an_error_with_the_spec_body_never_a_500(
    client: Client, mirror: Upstream, script: Script, fake: str, answer: bytes
) -> None:
    script.require = "Bearer t0ken"
    script.challenge = f'Bearer realm="{fake}/token",service="fake"'
    script.add("/token", answer)
    _serve_manifest(script, _image("a")[2])
    response = oci.get_manifest(client, f"{PREFIX}/app", "1")
    assert response.status_code in (502, 503)
    assert _error(response)["code"] == "UNKNOWN"


def test_a_token_whose_lifetime_is_no_number_is_kept_for_the_default(
    client: Client, mirror: Upstream, script: Script, fake: str
) -> None:
    script.require = "Bearer t0ken"
    script.challenge = f'Bearer realm="{fake}/token",service="fake"'
    script.add("/token", json.dumps({"token": "t0ken", "expires_in": "soon"}).encode())
    _serve_manifest(script, _image("a")[2])
    assert oci.get_manifest(client, f"{PREFIX}/app", "1").status_code == 200


def test_it_takes_a_token_that_does_not_open_a_repository_for_a_missing_one(
    client: Client, mirror: Upstream, script: Script, fake: str
) -> None:
    """Docker Hub answers 401 for a repository that does not exist, whatever the token."""
    script.require = "Bearer t0ken"
    script.challenge = f'Bearer realm="{fake}/token",service="fake"'
    script.add("/token", json.dumps({"token": "t0ken"}).encode())
    script.add("/v2/nobody/manifests/1", b"{}", status=401, WWW_Authenticate=script.challenge)
    response = oci.get_manifest(client, f"{PREFIX}/nobody", "1")
    assert (response.status_code, _error(response)["code"]) == (404, "NAME_UNKNOWN")


@pytest.mark.auth
def test_it_lets_only_authenticated_callers_fetch_when_told_so(
    client: Client, mirror: Upstream, script: Script, settings
) -> None:
    PublicPattern.objects.create(pattern=f"{PREFIX}/*")
    settings.CROW_MIRROR_FETCH = "authenticated"
    _, _, manifest = _image("a")
    _serve_manifest(script, manifest)
    response = oci.get_manifest(client, f"{PREFIX}/app", "1")  # anonymous: what is stored only
    assert (response.status_code, _error(response)["code"]) == (404, "NAME_UNKNOWN")
    assert script.seen == []
    settings.CROW_MIRROR_FETCH = "anyone"
    assert oci.get_manifest(client, f"{PREFIX}/app", "1").status_code == 200


def test_it_records_what_it_stored_as_the_mirrors_doing(
    client: Client, mirror: Upstream, script: Script
) -> None:
    config, layer, manifest = _image("a")
    _serve_manifest(script, manifest)
    assert oci.get_manifest(client, f"{PREFIX}/app", "1").status_code == 200
    push = AuditEvent.objects.get(action="push")
    assert (push.actor, push.repository, push.reference) == (f"system:mirror:{PREFIX}", f"{PREFIX}/app", "1")


def test_it_stores_a_blob_of_unsaid_length_before_serving_it(
    client: Client, mirror: Upstream, script: Script
) -> None:
    _, layer, _ = _image("a")
    script.add(f"/v2/app/blobs/{layer.digest}", layer.data, X_Until_Close="1")
    response = client.get(f"/v2/{PREFIX}/app/blobs/{layer.digest}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == layer.data
    assert Blob.objects.filter(digest=layer.digest).exists()


def test_it_finishes_storing_a_blob_whose_client_went_away(
    client: Client, mirror: Upstream, script: Script
) -> None:
    data = b"y" * (3 * upstream.CHUNK + 5)
    digest = oci.sha256(data)
    script.add(f"/v2/app/blobs/{digest}", data)
    response = client.get(f"/v2/{PREFIX}/app/blobs/{digest}")
    next(iter(response.streaming_content))
    response.close()  # what the server does when the client disconnects
    deadline = time.monotonic() + 10
    while BlobFetch.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert RepositoryBlob.objects.filter(repository__name=f"{PREFIX}/app", blob__digest=digest).exists()


def test_it_sends_a_password_without_a_username_as_a_static_token(
    client: Client, mirror: Upstream, script: Script
) -> None:
    mirror.username, mirror.password = "", "st4tic"
    mirror.save()
    script.require, script.challenge = "Bearer st4tic", 'Bearer realm="http://127.0.0.1:1/token"'
    _, _, manifest = _image("a")
    _serve_manifest(script, manifest)
    assert oci.get_manifest(client, f"{PREFIX}/app", "1").status_code == 200
    script.require = "Bearer other"
    response = oci.get_manifest(client, f"{PREFIX}/app", manifest.digest.replace("sha256:", "sha256:f")[:71])
    assert (response.status_code, _error(response)["code"]) == (502, "UNKNOWN")


def test_it_follows_a_blob_to_another_host_without_its_credentials(
    client: Client, mirror: Upstream, script: Script, fake: str
) -> None:
    """Docker Hub redirects blob downloads to its CDN."""
    basic = "Basic " + base64.b64encode(f"mirror:{PASSWORD}".encode()).decode()
    script.require, script.challenge = basic, 'Basic realm="upstream"'
    _, layer, _ = _image("a")
    cdn = fake.replace("127.0.0.1", "localhost")
    script.add(f"/v2/app/blobs/{layer.digest}", b"", status=307, Location=f"{cdn}/cdn/{layer.digest}")
    script.add(f"/cdn/{layer.digest}", layer.data)
    response = client.get(f"/v2/{PREFIX}/app/blobs/{layer.digest}")
    assert b"".join(response.streaming_content) == layer.data
    assert [seen[2] for seen in script.seen if seen[1].startswith("/cdn/")] == [""]
