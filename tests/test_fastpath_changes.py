"""A cached answer changes after every kind of write, through any process: the fast path never serves
a moved or deleted tag, a deleted manifest or an unlinked blob.

Writes through a server are seen by the next request to any server (the writer's barrier, then
PostgreSQL's delivery); writes made elsewhere (the ORM here, as the admin and gc do) within a
moment (delivery is asynchronous), which ``_eventually`` allows for.
"""

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from crow import notices
from registry.models import Repository, Tag
from tests.fastservers import granian, request
from tests.server import database_url
from tests.tcpproxy import proxy_to
from tests.test_fastpath import OCI, _push, _put

pytestmark = [
    pytest.mark.realserver,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the fast path needs PostgreSQL"),
]

MANIFEST = "/v2/team/app/manifests/latest"


def _get(port: int, path: str) -> tuple[int, str]:
    status, headers, _ = request(port, "GET", path, {"Accept": OCI})
    return status, dict(headers).get("docker-content-digest", "")


def _eventually(check: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def servers(tmp_path: Path, blob_root: Path):
    settings = {"CROW_BLOB_ROOT": str(blob_root), "CROW_AUTH_DISABLED": "1"}
    with granian(tmp_path, "a", **settings) as a, granian(tmp_path, "b", **settings) as b:
        yield a, b


def _image(seed: str, layer: str) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": layer,
                "size": 1200,
            },
            "layers": [],
            "annotations": {"seed": seed},
        }
    ).encode()


def test_it_reads_its_writes_across_processes(servers: tuple[int, int]) -> None:
    a, b = servers
    layer = _push(a, "team/app")["layer"]
    for attempt in range(40):
        writer, reader = (a, b) if attempt % 2 == 0 else (b, a)
        _get(reader, "/v2/team/app/manifests/moving")
        _get(writer, "/v2/team/app/manifests/moving")
        digest = _put(writer, "team/app", "moving", _image(str(attempt), layer), OCI)
        assert _get(reader, "/v2/team/app/manifests/moving") == (200, digest), attempt
        assert _get(writer, "/v2/team/app/manifests/moving") == (200, digest), attempt
    status, _, _ = request(a, "DELETE", "/v2/team/app/manifests/moving")
    assert status == 202
    assert _get(b, "/v2/team/app/manifests/moving")[0] == 404


def test_it_reads_its_writes_when_notices_come_late(tmp_path: Path, blob_root: Path) -> None:
    """The reader's way back from PostgreSQL is slow (a proxy holds each answer 0.3 s): the notice of
    the writer's tag move reaches the reader after the move's 201 reached the client. Without the
    barrier the reader answers the old digest from its cache; with it, the new one, later."""
    settings = {"CROW_BLOB_ROOT": str(blob_root), "CROW_AUTH_DISABLED": "1"}
    database = connection.settings_dict
    with proxy_to(database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)) as proxy:
        slow = database_url({**database, "HOST": "127.0.0.1", "PORT": str(proxy.port)})
        with (
            granian(tmp_path, "a", **settings) as writer,
            granian(tmp_path, "b", DATABASE_URL=slow, **settings) as reader,
        ):
            layer = _push(writer, "team/app")["layer"]
            for attempt in range(3):
                proxy.delay = 0.0
                old = _put(writer, "team/app", "late", _image(f"old {attempt}", layer), OCI)
                assert _eventually(lambda old=old: _get(reader, "/v2/team/app/manifests/late") == (200, old))
                assert _get(reader, "/v2/team/app/manifests/late") == (200, old)  # cached now
                proxy.delay = 0.3
                new = _put(writer, "team/app", "late", _image(f"new {attempt}", layer), OCI)
                assert _get(reader, "/v2/team/app/manifests/late") == (200, new), attempt


def test_it_forgets_a_deleted_manifest_and_an_unlinked_blob(servers: tuple[int, int]) -> None:
    a, b = servers
    found = _push(a, "team/app")
    blob = f"/v2/team/app/blobs/{found['layer']}"
    by_digest = f"/v2/team/app/manifests/{found['image']}"
    for port in servers:
        assert request(port, "HEAD", blob)[0] == 200
        assert _get(port, by_digest)[0] == 200
    assert request(a, "DELETE", blob)[0] == 202
    assert request(a, "DELETE", by_digest)[0] == 202
    for port in (b, a):
        assert request(port, "HEAD", blob)[0] == 404
        assert _get(port, by_digest)[0] == 404


@pytest.mark.parametrize("write", ["orm tag delete", "repository delete", "truncate", "gc"])
def test_it_forgets_writes_made_outside_the_servers(servers: tuple[int, int], write: str) -> None:
    a, b = servers
    found = _push(a, "team/app")
    blob = f"/v2/team/app/blobs/{found['layer']}"
    for port in servers:
        assert _get(port, MANIFEST) == (200, found["image"])
        assert request(port, "HEAD", blob)[0] == 200
    if write == "orm tag delete":  # as the admin deletes a tag
        Tag.objects.filter(repository__name="team/app").delete()
    elif write == "repository delete":  # as the admin deletes a repository
        Repository.objects.filter(name="team/app").delete()
    elif write == "truncate":
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {Tag._meta.db_table}")
    else:  # the untagged manifest, still served by digest, collected
        Tag.objects.filter(repository__name="team/app").delete()
        by_digest = f"/v2/team/app/manifests/{found['image']}"
        for port in servers:
            assert _get(port, by_digest) == (200, found["image"])
        call_command("gc", "--untagged", "--grace-period", "0", verbosity=0)
        for port in servers:
            assert _eventually(lambda port=port: _get(port, by_digest)[0] == 404), (write, port)
    for port in servers:
        assert _eventually(lambda port=port: _get(port, MANIFEST)[0] == 404), (write, port)
    if write == "repository delete":
        for port in servers:
            assert _eventually(lambda port=port: request(port, "HEAD", blob)[0] == 404), (write, port)


def _terminate_listeners() -> int:
    """End every backend that LISTENs for change notices (the servers' fast paths) on the test database
    (not those of other test runs sharing the PostgreSQL server): how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            [notices.APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


def test_it_never_serves_a_moved_tag_while_its_listener_is_down(servers: tuple[int, int]) -> None:
    """The listening connection is killed under both servers: a tag moved meanwhile (through a server,
    and from outside) is never answered from the cache, and once they listen again they cache anew."""
    a, b = servers
    layer = _push(a, "team/app")["layer"]
    path = "/v2/team/app/manifests/moving"
    for round_ in range(3):
        before = _put(a, "team/app", "moving", _image(f"before {round_}", layer), OCI)
        for port in servers:
            assert _eventually(lambda port=port, before=before: _get(port, path) == (200, before))
            assert _get(port, path) == (200, before)  # cached now
        assert _terminate_listeners() == 2, "each server's worker listens"
        moved = _put(b, "team/app", "moving", _image(f"moved {round_}", layer), OCI)
        for port in (a, b, a, b):
            assert _get(port, path) == (200, moved), round_
        Tag.objects.filter(repository__name="team/app", name="moving").delete()  # as the admin does
        for port in servers:
            assert _eventually(lambda port=port: _get(port, path)[0] == 404), round_
        assert _eventually(lambda: _listening() == 2, seconds=10), "the listeners reconnect"
    assert _get(a, path)[0] == 404


def _listening() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            [notices.APPLICATION_NAME],
        )
        return cursor.fetchone()[0]
