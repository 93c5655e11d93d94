"""Backup and restore throughput on a registry of a few hundred MiB.

    .venv/bin/python -m bench.backup_restore                       # 400 MiB, SQLite
    .venv/bin/python -m bench.backup_restore --mib 800 --postgres postgres://postgres@127.0.0.1:5432

Pushes images of one 16 MiB random layer each (through Django's test client,
in process) into a fresh installation under ``bench/out/backup/`` (a new
``crow_bench_backup`` database with ``--postgres``), then times ``backup`` into
an empty directory, a second, incremental ``backup`` (nothing to copy),
and, once every row and blob is deleted, ``restore`` (which reads every byte
twice: verification, then the copy into the store).
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "backup"
DATABASE = "crow_bench_backup"
MiB = 1024 * 1024
LAYER = 16 * MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=400, help="registry size in MiB (default 400)")
    parser.add_argument("--postgres", help="a PostgreSQL server URL; without it, SQLite")
    args = parser.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="crow.settings",
        CROW_VAR_DIR=str(OUT / "var"),
        CROW_BLOB_ROOT=str(OUT / "blobs"),
        CROW_AUTH_DISABLED="1",
        CROW_ALLOWED_HOSTS="testserver",
    )
    if args.postgres:
        _recreate_database(args.postgres)
        os.environ["DATABASE_URL"] = f"{args.postgres.rstrip('/')}/{DATABASE}"
    else:
        os.environ.pop("DATABASE_URL", None)

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from registry.backup.restore import restore
    from registry.backup.snapshot import backup
    from tests import backups, oci

    call_command("migrate", verbosity=0)
    client = Client()
    images = max(1, args.mib * MiB // LAYER)
    print(f"pushing {images} images of one {LAYER // MiB} MiB layer", flush=True)
    for n in range(images):
        config = oci.config(f"bench-{n}")
        layer = oci.Blob(os.urandom(LAYER))
        image = oci.Image(config, (layer,), oci.image_manifest(config, [layer]))
        oci.push_image(client, f"bench/app{n % 10}", image, f"v{n}")

    dest = OUT / "backup"
    figures = []
    for name in ("backup", "incremental backup"):
        started = time.monotonic()
        report = backup(str(dest))
        figures.append((name, report.bytes_copied, time.monotonic() - started, report.summary()))
    backups.empty_installation()
    started = time.monotonic()
    report = restore(str(dest))
    figures.append(("restore", report.bytes, time.monotonic() - started, report.summary()))

    database = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{database}, filesystem store and backup directory on one disk:")
    for name, size, seconds, summary in figures:
        rate = size / MiB / seconds
        print(f"  {name:<20} {size / MiB:8.1f} MiB copied in {seconds:6.2f} s = {rate:7.1f} MiB/s")
        print(f"  {'':<20} {summary}")
    shutil.rmtree(OUT, ignore_errors=True)
    if args.postgres:
        from django.db import connections

        connections.close_all()
        _drop_database(args.postgres)


def _drop_database(server: str) -> None:
    import psycopg

    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE}")


def _recreate_database(server: str) -> None:
    import psycopg

    _drop_database(server)
    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {DATABASE}")


if __name__ == "__main__":
    sys.exit(main())
