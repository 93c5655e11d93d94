"""Time ``manage.py gc --dry-run --untagged`` on 50,000 repositories and 100,000 tags in one of them.

    .venv/bin/python -m bench.gc_scale --database crow_bench_gc_scale
    .venv/bin/python -m bench.gc_scale --before /tmp/crow-before   # also time an older checkout

Creates the database afresh on the PostgreSQL server of ``--postgres``,
migrates it, and fills it with COPY (seconds, not minutes): ``--repositories``
repositories; one of them, ``bench/big``, holds ``--tags`` tagged manifests and
1% as many untagged ones; every other one holds one tagged manifest, and every
50th of those also an untagged one. Each manifest references one blob: the
tagged ones share a thousand, each untagged one has its own (garbage once the
manifest goes). Everything is 30 days old, older than any grace period.

Then it runs ``manage.py gc --dry-run --untagged`` as an operator would, in a
new process each time, ``--repeat`` times per checkout: this one, and the one
in ``--before`` if given (a copy of older code, e.g. ``git archive COMMIT |
tar -x -C /tmp/crow-before``; it runs with this interpreter against the same
database). Prints each run's wall time, the CPU time of the gc process (the
Python side; the rest of the wall time is mostly the database's), and the
summary line, which must be the same for both checkouts. Drops the database
at the end unless ``--keep``.
"""

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
SHARED_BLOBS = 1000  # what tagged manifests reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="no database name")
    parser.add_argument("--database", default="crow_bench_gc_scale", help="created afresh, dropped after")
    parser.add_argument("--repositories", type=int, default=50_000)
    parser.add_argument("--tags", type=int, default=100_000, help="tagged manifests in bench/big")
    parser.add_argument("--before", type=Path, help="a checkout of older code to time as well")
    parser.add_argument("--repeat", type=int, default=2, help="gc runs per checkout (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    url = f"{args.postgres.rstrip('/')}/{args.database}"
    _recreate(args.postgres, args.database)
    try:
        with tempfile.TemporaryDirectory(prefix="crow-gc-scale-") as work:
            env = _environment(url, Path(work))
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
            started = time.perf_counter()
            counts = fill(url, args.repositories, args.tags)
            print(f"filled in {time.perf_counter() - started:.1f} s: {counts}", flush=True)
            checkouts = ([("before", args.before.resolve())] if args.before else []) + [("after", ROOT)]
            for label, checkout in checkouts:
                _time_gc(label, checkout, env, args.repeat)
    finally:
        if not args.keep:
            _drop(args.postgres, args.database)


def _environment(url: str, work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "CROW_SECRET_KEY": "bench-" + "x" * 50,
        "CROW_BLOB_ROOT": str(work / "blobs"),  # empty: the storage sweep has nothing to list
        "CROW_VAR_DIR": str(work / "var"),
    }


def _time_gc(label: str, checkout: Path, env: dict[str, str], repeat: int) -> None:
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "manage.py", "gc", "--dry-run", "--untagged"],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        summary = done.stdout.strip().splitlines()[-1]
        print(
            f"  {label:6} wall {walls[-1]:6.2f} s, gc process CPU {cpus[-1]:6.2f} s | {summary}", flush=True
        )
    print(
        f"{label:6} ({checkout}): median wall {statistics.median(walls):.2f} s,"
        f" median gc process CPU {statistics.median(cpus):.2f} s (process start and Django setup included)",
        flush=True,
    )


def fill(url: str, repositories: int, tags: int) -> dict[str, int]:
    """Fill the migrated, empty database with COPY; returns the row counts."""
    import psycopg

    created = datetime.now(UTC) - timedelta(days=30)
    plan = list(_manifests(repositories, tags))  # (repository id, tag name or None)
    garbage = [number for number, (_, tag) in enumerate(plan) if tag is None]
    own_blob = {number: SHARED_BLOBS + 1 + position for position, number in enumerate(garbage)}
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        names = ("bench/big" if n == 1 else f"bench/r{n:05d}" for n in range(1, repositories + 1))
        _copy(
            cursor,
            "registry_repository",
            ("id", "name", "created"),
            ((n, name, created) for n, name in enumerate(names, 1)),
        )
        blobs = SHARED_BLOBS + len(garbage)
        _copy(
            cursor,
            "registry_blob",
            ("id", "digest", "size", "key", "created"),
            (_blob(n, created) for n in range(1, blobs + 1)),
        )
        manifest_columns = (
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
        _copy(
            cursor,
            "registry_manifest",
            manifest_columns,
            (_manifest(n, repository, created) for n, (repository, _) in enumerate(plan, 1)),
        )
        references = [(n, own_blob.get(n - 1, (n - 1) % SHARED_BLOBS + 1)) for n in range(1, len(plan) + 1)]
        _copy(cursor, "registry_manifestblob", ("manifest_id", "blob_id"), references)
        links = {(plan[manifest - 1][0], blob) for manifest, blob in references}
        _copy(
            cursor,
            "registry_repositoryblob",
            ("repository_id", "blob_id", "created"),
            ((r, b, created) for r, b in sorted(links)),
        )
        tag_rows = (
            (plan[n - 1][0], plan[n - 1][1], n, created) for n in range(1, len(plan) + 1) if plan[n - 1][1]
        )
        _copy(cursor, "registry_tag", ("repository_id", "name", "manifest_id", "updated"), tag_rows)
        for table in ("registry_repository", "registry_blob", "registry_manifest"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        cursor.execute("ANALYZE")
    return {
        "repositories": repositories,
        "manifests": len(plan),
        "tags": len(plan) - len(garbage),
        "untagged manifests": len(garbage),
        "blobs": blobs,
    }


def _manifests(repositories: int, tags: int) -> Iterator[tuple[int, str | None]]:
    """(repository id, tag) of every manifest, in id order; no tag: untagged."""
    for number in range(tags):
        yield 1, f"v{number}"
    for _ in range(tags // 100):
        yield 1, None
    for repository in range(2, repositories + 1):
        yield repository, "latest"
        if repository % 50 == 0:
            yield repository, None


def _blob(number: int, created: datetime) -> tuple:
    digest = "sha256:" + hashlib.sha256(f"blob {number}".encode()).hexdigest()
    return number, digest, 1024, f"{digest.replace(':', '/')}/{uuid.uuid4().hex}", created


def _manifest(number: int, repository: int, created: datetime) -> tuple:
    content = json.dumps(
        {"schemaVersion": 2, "mediaType": MEDIA_TYPE, "annotations": {"n": str(number)}}
    ).encode()
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    return number, repository, digest, MEDIA_TYPE, "", len(content), content, "", created


def _copy(cursor: object, table: str, columns: tuple[str, ...], rows: object) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
        for row in rows:  # type: ignore[attr-defined]
            copy.write_row(row)


def _drop(server: str, database: str) -> None:
    import psycopg

    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _recreate(server: str, database: str) -> None:
    import psycopg

    _drop(server, database)
    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database}")


if __name__ == "__main__":
    main()
