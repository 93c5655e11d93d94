"""Time the operator console's pages on 50,000 repositories and 100,000 tags in one of them.

    .venv/bin/python -m bench.admin_scale --database crow_bench_admin_scale

Creates the database afresh on the PostgreSQL server of ``--postgres``,
migrates it and fills it with COPY (seconds): ``--repositories``
repositories; ``bench/big`` holds ``--tags`` tagged images (a config and a
layer each, the layers 1 to 100 MiB) and an index of two of them tagged
``latest``; every other repository holds one tagged image of its own. Then
it renders each admin page in this process through Django's test client
(the whole stack but the socket: middleware, session, admin, templates),
logged in as a superuser: once to warm up, then ``--repeat`` times, and
prints the median, the slowest and the query count of each. The cache is
cleared before each render and the config blobs are not stored, so every
render looks up its page's configs and asks the store for each: the
console's cold path (a real config is read once, then cached by digest).
Drops the database at the end unless ``--keep``.
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.gc_scale import _copy, _drop, _recreate

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
BIG = "bench/big"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="no database name")
    parser.add_argument("--database", default="crow_bench_admin_scale", help="created afresh, dropped after")
    parser.add_argument("--repositories", type=int, default=50_000)
    parser.add_argument("--tags", type=int, default=100_000, help="tagged images in bench/big")
    parser.add_argument("--repeat", type=int, default=5, help="renders per page after the warm-up")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    url = f"{args.postgres.rstrip('/')}/{args.database}"
    _recreate(args.postgres, args.database)
    try:
        with tempfile.TemporaryDirectory(prefix="crow-admin-scale-") as work:
            os.environ.update(_environment(url, Path(work)))
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
            started = time.perf_counter()
            counts = fill(url, args.repositories, args.tags)
            print(f"filled in {time.perf_counter() - started:.1f} s: {counts}", flush=True)
            measure(args.repeat)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            _drop(args.postgres, args.database)


def _environment(url: str, work: Path) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "DATABASE_URL": url,
        "CROW_SECRET_KEY": "bench-" + "x" * 50,
        "CROW_BLOB_ROOT": str(work / "blobs"),
        "CROW_VAR_DIR": str(work / "var"),
        "CROW_DEBUG": "0",
    }


def fill(url: str, repositories: int, tags: int) -> dict[str, int]:
    """Fill the migrated, empty database with COPY; returns the row counts."""
    import psycopg

    now = datetime.now(UTC)
    plan = [(1, f"v{n:06d}") for n in range(tags)] + [(r, "latest") for r in range(2, repositories + 1)]
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        names = (BIG if n == 1 else f"bench/r{n:05d}" for n in range(1, repositories + 1))
        _copy(
            cursor,
            "registry_repository",
            ("id", "name", "created"),
            ((n, name, now) for n, name in enumerate(names, 1)),
        )
        _copy(cursor, "registry_blob", ("id", "digest", "size", "key", "created"), _blobs(len(plan), now))
        manifests = [_image(n) for n in range(1, len(plan) + 1)]
        index_id = len(plan) + 1
        index = _index(manifests[0], manifests[1])
        columns = (
            "id",
            "repository_id",
            "digest",
            "media_type",
            "artifact_type",
            "size",
            "content",
            "subject",
            "created",
        )
        rows = [
            (n, repository, _digest(content), MANIFEST, CONFIG, len(content), content, "", now)
            for n, ((repository, _), content) in enumerate(zip(plan, manifests, strict=True), 1)
        ]
        rows.append((index_id, 1, _digest(index), INDEX, "", len(index), index, "", now))
        _copy(cursor, "registry_manifest", columns, rows)
        references = [(n, blob) for n in range(1, len(plan) + 1) for blob in (2 * n - 1, 2 * n)]
        _copy(cursor, "registry_manifestblob", ("manifest_id", "blob_id"), references)
        _copy(cursor, "registry_manifestchild", ("parent_id", "child_id"), [(index_id, 1), (index_id, 2)])
        links = ((plan[m - 1][0], blob, now) for m, blob in references)
        _copy(cursor, "registry_repositoryblob", ("repository_id", "blob_id", "created"), links)
        tag_rows = [(r, name, n, now - timedelta(seconds=n)) for n, (r, name) in enumerate(plan, 1)]
        tag_rows.append((1, "latest", index_id, now))
        _copy(cursor, "registry_tag", ("repository_id", "name", "manifest_id", "updated"), tag_rows)
        for table in ("registry_repository", "registry_blob", "registry_manifest"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        cursor.execute("ANALYZE")
    return {
        "repositories": repositories,
        "tags": len(tag_rows),
        "manifests": len(rows),
        "blobs": 2 * len(plan),
    }


def _blob_digest(number: int) -> str:
    return "sha256:" + hashlib.sha256(f"blob {number}".encode()).hexdigest()


def _blob_size(number: int) -> int:
    return 1024 if number % 2 else (number // 2 % 100 + 1) * 1024 * 1024


def _blobs(images: int, created: datetime) -> Iterator[tuple]:
    for number in range(1, 2 * images + 1):
        digest = _blob_digest(number)
        yield number, digest, _blob_size(number), f"{digest.replace(':', '/')}/absent", created


def _image(number: int) -> bytes:
    """Image ``number``: config blob 2n-1, layer blob 2n."""
    config, layer = 2 * number - 1, 2 * number
    document = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": _blob_digest(config), "size": _blob_size(config)},
        "layers": [{"mediaType": LAYER, "digest": _blob_digest(layer), "size": _blob_size(layer)}],
    }
    return json.dumps(document).encode()


def _index(*children: bytes) -> bytes:
    platforms = [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
    ]
    entries = [
        {"mediaType": MANIFEST, "digest": _digest(child), "size": len(child), "platform": platform}
        for child, platform in zip(children, platforms, strict=True)
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).encode()


def _digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def measure(repeat: int) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from registry.models import Blob, Manifest, Repository, Tag

    setup_test_environment()  # the test client's host, testserver, is allowed
    user = get_user_model().objects.create_superuser("bench", email="", password=None)
    client = Client()
    client.force_login(user)
    big = Repository.objects.get(name=BIG)
    index = Tag.objects.get(repository=big, name="latest").manifest
    image = Manifest.objects.filter(repository=big).exclude(pk=index.pk).order_by("pk").first()
    blob = Blob.objects.order_by("pk").last()
    tags = f"/admin/registry/tag/?repository__id__exact={big.pk}"
    middle = max(1, Tag.objects.filter(repository=big).count() // 100)
    pages = [
        ("dashboard", "/admin/"),
        ("repositories", "/admin/registry/repository/"),
        ("repositories by size", "/admin/registry/repository/?o=-3"),
        ("repositories by last push", "/admin/registry/repository/?o=-4"),
        ("repositories, search by name", "/admin/registry/repository/?q=r4999"),
        ("repositories, search by digest", f"/admin/registry/repository/?q={image.digest[:17]}"),
        ("bench/big: its tags, page 1", tags),
        (f"bench/big: page {middle:,} of its tags", f"{tags}&p={middle}"),
        ("bench/big: by push time", f"{tags}&o=-6"),
        ("bench/big: search a tag", f"{tags}&q=v09999"),
        ("all tags", "/admin/registry/tag/"),
        ("manifests", "/admin/registry/manifest/"),
        ("index page", f"/admin/registry/manifest/{index.pk}/change/"),
        ("image page", f"/admin/registry/manifest/{image.pk}/change/"),
        ("blobs", "/admin/registry/blob/"),
        ("blob page", f"/admin/registry/blob/{blob.pk}/change/"),
        ("uploads", "/admin/registry/upload/"),
    ]
    print(f"{'page':34} {'median':>9} {'slowest':>9} {'queries':>8}")
    for label, url in pages:
        assert client.get(url).status_code == 200, url
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        queries = len(captured)  # now: each request empties the log that captured reads
        timings = []
        for _ in range(repeat):
            cache.clear()  # the configs' summaries: every render reads them again (none is stored here)
            started = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, url
        median, slowest = statistics.median(timings) * 1000, max(timings) * 1000
        print(f"{label:34} {median:7.0f} ms {slowest:7.0f} ms {queries:8}", flush=True)


if __name__ == "__main__":
    main()
