"""The pull-through cache with real clients: skopeo pulls through CRoW from the reference registry.

One reference registry (Debian's ``docker-registry``) per module holds the
images, behind a proxy the tests switch off (the upstream down) and whose
byte count says what CRoW downloaded. Each test runs its own CRoW server
(``registry_server``: authentication on, a robot that may pull and push in
``team/*``) with an ``Upstream`` row for prefix ``team/hub``.
"""

import concurrent.futures
import json
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.utils import timezone

from registry.mirror.models import MirroredRepository, Upstream
from registry.models import Manifest, Repository, Tag
from tests import ocilayout, processes
from tests.s3server import S3Server
from tests.server import ROOT, Server
from tests.skopeo import Skopeo
from tests.tcpproxy import FORWARD, REFUSE
from tests.upstreams import Upstream as ReferenceRegistry
from tests.upstreams import reference_registry

PREFIX = "team/hub"
BIG_LAYER = 48 * 1024 * 1024
TIMEOUT = 60


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, require_client) -> Iterator[ReferenceRegistry]:
    """The reference registry with ``lib/app:1`` (an image), ``lib/multi:1`` (an index) and
    ``lib/big:1`` (an image with a 48 MiB layer)."""
    root = tmp_path_factory.mktemp("upstream")
    skopeo = Skopeo(require_client("skopeo"))
    with reference_registry(require_client("docker-registry"), root / "registry") as registry:
        ocilayout.write_image(root / "app", "1")
        skopeo.push(root / "app", "1", f"{registry.direct}/lib/app:1")
        ocilayout.write_index(root / "multi", "1")
        skopeo.push(root / "multi", "1", f"{registry.direct}/lib/multi:1", "--all")
        ocilayout.write_image(root / "big", "1", layer_sizes=(BIG_LAYER,))
        skopeo.push(root / "big", "1", f"{registry.direct}/lib/big:1")
        yield registry


@pytest.fixture
def proxy(upstream: ReferenceRegistry) -> Iterator:
    upstream.proxy.mode = FORWARD
    yield upstream.proxy
    upstream.proxy.mode = FORWARD


@pytest.fixture
def mirror(registry_server: Server, upstream: ReferenceRegistry) -> Upstream:
    return Upstream.objects.create(prefix=PREFIX, url=upstream.url, tag_trust_seconds=600)


def _pull(skopeo: Skopeo, source: str, layout: Path, *options: str) -> str:
    skopeo.pull(source, layout, "t", *options)
    return ocilayout.tagged(layout, "t")


def _token(server: Server, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(name)}"}


@pytest.mark.parametrize("store", ["filesystem", "s3"])
def test_it_pulls_through_with_identical_digests_and_serves_what_it_stored_when_the_upstream_is_down(
    store: str,
    request: pytest.FixtureRequest,
    mirror: Upstream,
    registry_server: Server,
    skopeo: Skopeo,
    upstream: ReferenceRegistry,
    proxy,
    tmp_path: Path,
) -> None:
    direct = Skopeo(skopeo.path)
    expected_app = _pull(direct, f"{upstream.direct}/lib/app:1", tmp_path / "direct-app")
    expected_multi = _pull(direct, f"{upstream.direct}/lib/multi:1", tmp_path / "direct-multi", "--all")

    through = f"{registry_server.host}/{PREFIX}/lib"
    assert _pull(skopeo, f"{through}/app:1", tmp_path / "app") == expected_app
    assert _pull(skopeo, f"{through}/multi:1", tmp_path / "multi", "--all") == expected_multi
    assert ocilayout.blobs(tmp_path / "app") == ocilayout.blobs(tmp_path / "direct-app")
    assert ocilayout.blobs(tmp_path / "multi") == ocilayout.blobs(tmp_path / "direct-multi")
    mirrored = MirroredRepository.objects.get(repository__name=f"{PREFIX}/lib/app")
    assert mirrored.upstream_id == mirror.id and mirrored.last_synced is not None
    assert mirrored.last_pulled is not None

    proxy.mode = REFUSE
    assert _pull(skopeo, f"{through}/app:1", tmp_path / "again-app") == expected_app
    assert _pull(skopeo, f"{through}/multi:1", tmp_path / "again-multi", "--all") == expected_multi
    assert ocilayout.blobs(tmp_path / "again-multi") == ocilayout.blobs(tmp_path / "direct-multi")

    # What CRoW never fetched cannot be served with the upstream down: 503 with the spec's body, no 500.
    missing = requests.get(
        f"{registry_server.url}/v2/{PREFIX}/lib/never/manifests/1",
        headers=_token(registry_server, f"{PREFIX}/lib/never"),
        timeout=TIMEOUT,
    )
    assert missing.status_code == 503
    assert missing.headers["Retry-After"]
    assert missing.json()["errors"][0]["code"] == "UNKNOWN"
    assert "unavailable" in missing.json()["errors"][0]["message"]

    if store == "s3":  # a stored blob is served by the usual presigned redirect
        layer = json.loads(ocilayout.blob_path(tmp_path / "app", expected_app).read_bytes())["layers"][0]
        response = requests.get(
            f"{registry_server.url}/v2/{PREFIX}/lib/app/blobs/{layer['digest']}",
            headers=_token(registry_server, f"{PREFIX}/lib/app"),
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert response.status_code == 307
        assert response.headers["Location"].startswith(request.getfixturevalue("s3_server").endpoint_url)


@pytest.fixture
def server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """What a test parametrises indirectly, and S3 for the tests parametrised with ``store="s3"``."""
    env = dict(getattr(request, "param", {}))
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("store") == "s3":
        s3_server: S3Server = request.getfixturevalue("s3_server")
        env.update(s3_server.environment(request.getfixturevalue("s3_bucket")))
    return env


@pytest.mark.parametrize(
    "server_env", [{"CROW_MIRROR_ROOT": PREFIX, "CROW_AUTH_DISABLED": "1"}], indirect=True, ids=["root"]
)
def test_it_serves_an_upstream_at_the_root_as_a_docker_daemon_mirror(
    mirror: Upstream,
    registry_server: Server,
    skopeo_path: str,
    upstream: ReferenceRegistry,
    proxy,
    tmp_path: Path,
) -> None:
    skopeo = Skopeo(skopeo_path)  # an open registry: what a Docker daemon's registry-mirrors asks
    expected = _pull(skopeo, f"{upstream.direct}/lib/app:1", tmp_path / "direct")
    assert _pull(skopeo, f"{registry_server.host}/lib/app:1", tmp_path / "root") == expected
    assert ocilayout.blobs(tmp_path / "root") == ocilayout.blobs(tmp_path / "direct")
    assert MirroredRepository.objects.filter(repository__name=f"{PREFIX}/lib/app").exists()
    assert not Repository.objects.filter(name="lib/app").exists()

    # A local repository of a name at the root is that repository, pushed to and pulled like any other.
    pushed = ocilayout.write_image(tmp_path / "local", "1", layer_sizes=(1000,))
    skopeo.push(tmp_path / "local", "1", f"{registry_server.host}/lib/local:1")
    assert _pull(skopeo, f"{registry_server.host}/lib/local:1", tmp_path / "local-pulled") == pushed


def test_it_answers_404_for_what_the_upstream_does_not_have(
    mirror: Upstream, registry_server: Server, proxy
) -> None:
    name = f"{PREFIX}/lib/nothing"
    response = requests.get(
        f"{registry_server.url}/v2/{name}/manifests/1", headers=_token(registry_server, name), timeout=TIMEOUT
    )
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")


def test_it_checks_a_tag_again_after_its_trust_period(
    mirror: Upstream,
    registry_server: Server,
    skopeo: Skopeo,
    upstream: ReferenceRegistry,
    proxy,
    tmp_path: Path,
) -> None:
    mirror.tag_trust_seconds = 2
    mirror.save()
    direct = Skopeo(skopeo.path)
    first = ocilayout.write_image(tmp_path / "v1", "1", layer_sizes=(1000,))
    direct.push(tmp_path / "v1", "1", f"{upstream.direct}/lib/moving:1")
    name = f"{registry_server.host}/{PREFIX}/lib/moving:1"
    assert _pull(skopeo, name, tmp_path / "pulled-1") == first

    second = ocilayout.write_image(tmp_path / "v2", "1", layer_sizes=(2000,))
    direct.push(tmp_path / "v2", "1", f"{upstream.direct}/lib/moving:1")
    assert _pull(skopeo, name, tmp_path / "trusted") == first  # within its trust period
    time.sleep(2.5)
    assert _pull(skopeo, name, tmp_path / "pulled-2") == second
    assert ocilayout.blobs(tmp_path / "pulled-2") == ocilayout.blobs(tmp_path / "v2")

    # Past the trust period with the upstream down: what is stored, not an error.
    time.sleep(2.5)
    proxy.mode = REFUSE
    assert _pull(skopeo, name, tmp_path / "stale") == second


def test_it_downloads_a_large_blob_once_for_concurrent_first_pulls(
    mirror: Upstream,
    registry_server: Server,
    skopeo: Skopeo,
    upstream: ReferenceRegistry,
    proxy,
    tmp_path: Path,
) -> None:
    source = f"{registry_server.host}/{PREFIX}/lib/big:1"
    # The manifest first (a HEAD from each client would race for it too; that is not the point here).
    skopeo.manifest_digest(source)
    before = proxy.received

    def pull(index: int) -> str:
        return _pull(skopeo, source, tmp_path / f"big-{index}")

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        digests = list(pool.map(pull, range(3)))
    downloaded = proxy.received - before
    assert len(set(digests)) == 1
    assert BIG_LAYER < downloaded < 1.5 * BIG_LAYER, f"{downloaded} bytes came from the upstream"
    first = ocilayout.blobs(tmp_path / "big-0")
    assert all(ocilayout.blobs(tmp_path / f"big-{index}") == first for index in (1, 2))


@pytest.mark.parametrize("store", ["filesystem", "s3"])
def test_gc_empties_a_mirror_nobody_pulled_and_the_next_pull_fills_it_again(
    store: str,
    mirror: Upstream,
    registry_server: Server,
    skopeo: Skopeo,
    upstream: ReferenceRegistry,
    proxy,
    tmp_path: Path,
) -> None:
    Upstream.objects.filter(id=mirror.id).update(unused_days=30)
    source, local = f"{registry_server.host}/{PREFIX}/lib/app:1", f"{PREFIX}/lib/app"
    expected = _pull(skopeo, source, tmp_path / "first")
    long_ago = timezone.now() - timedelta(days=40)
    MirroredRepository.objects.filter(repository__name=local).update(
        last_pulled=long_ago, last_synced=long_ago
    )

    # gc as an operator runs it: another process, the server's settings (its store, its database).
    gc = [sys.executable, "manage.py", "gc", "--grace-period", "0"]
    env = {**registry_server.env, "CROW_SECRET_KEY": "an operator's key, " * 3}  # checked by commands
    done = processes.run(gc, cwd=ROOT, env=env, capture_output=True, timeout=TIMEOUT)
    output = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "of which 1 mirrored repository unused for 30 days" in output, output
    assert not Tag.objects.filter(repository__name=local).exists()
    assert not Manifest.objects.filter(repository__name=local).exists()

    before = proxy.received
    assert _pull(skopeo, source, tmp_path / "again") == expected  # fetched anew, the same image
    assert proxy.received > before
    assert ocilayout.blobs(tmp_path / "again") == ocilayout.blobs(tmp_path / "first")


def test_it_refuses_a_push_into_the_mirror(
    mirror: Upstream, registry_server: Server, skopeo: Skopeo, tmp_path: Path
) -> None:
    ocilayout.write_image(tmp_path / "image", "1", layer_sizes=(1000,))
    result = processes.run(
        [
            skopeo.path,
            "--insecure-policy",
            "copy",
            f"--dest-creds={registry_server.credentials}",
            "--dest-tls-verify=false",
            f"oci:{tmp_path / 'image'}:1",
            f"docker://{registry_server.host}/{PREFIX}/lib/app:pushed",
        ],
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert result.returncode != 0
    assert "read-only mirror" in result.stderr.decode(), result.stderr.decode()


def test_it_pulls_through_an_upstream_with_token_authentication(
    registry_server: Server, skopeo: Skopeo, tmp_path: Path
) -> None:
    """CRoW itself (authentication on: the Docker token flow) as the upstream, with a robot's credentials."""
    Upstream.objects.create(
        prefix="team/up",
        url=registry_server.url,
        username=registry_server.username,
        password=registry_server.password,
        repositories="team/*",
    )
    pushed = ocilayout.write_image(tmp_path / "image", "1", layer_sizes=(1000,))
    skopeo.push(tmp_path / "image", "1", f"{registry_server.host}/team/app:1")
    assert _pull(skopeo, f"{registry_server.host}/team/up/team/app:1", tmp_path / "pulled") == pushed
    assert ocilayout.blobs(tmp_path / "pulled") == ocilayout.blobs(tmp_path / "image")
    assert registry_server.password not in registry_server.log.read_text()


@pytest.mark.parametrize("server_env", [{"CROW_MIRROR_ROUTES_TTL": "1h"}], indirect=True, ids=["long-ttl"])
def test_it_hears_of_a_new_upstream_at_once_on_postgresql(
    registry_server: Server, upstream: ReferenceRegistry, proxy
) -> None:
    """Each worker keeps the upstreams it read; PostgreSQL's notice tells it that they changed."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no notices: the upstreams are read again after CROW_MIRROR_ROUTES_TTL")
    name = f"{PREFIX}/lib/app"
    url = f"{registry_server.url}/v2/{name}/manifests/1"
    headers = {**_token(registry_server, name), "Accept": "application/vnd.oci.image.manifest.v1+json"}
    for _ in range(4):  # every worker reads the upstreams: none yet
        assert requests.get(url, headers=headers, timeout=TIMEOUT).status_code == 404
    Upstream.objects.create(prefix=PREFIX, url=upstream.url)
    time.sleep(0.2)  # the notice's way to the listeners
    for _ in range(4):
        assert requests.get(url, headers=headers, timeout=TIMEOUT).status_code == 200
