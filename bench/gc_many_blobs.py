"""Time ``manage.py gc`` on a registry of a few thousand blobs.

    createdb -h 127.0.0.1 -U postgres crow_gc_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crow_gc_bench CROW_BLOB_ROOT=/tmp/crow-gc-bench \\
        .venv/bin/python -m bench.gc_many_blobs --images 1000

Migrates the database, then fills it (it must hold no repository yet) through
the ORM and the configured blob store: ``--images`` images of a config and
two layers (3 blobs each, 1-16 KiB), of which every second one is tagged and
the others are untagged. Then it runs, as an operator would, ``manage.py gc
--untagged --grace-period 0`` twice: the first run deletes the untagged half
(manifests, their blobs and bytes), the second finds nothing (the steady-state
cost of a run). Prints each run's summary line and wall time.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fill(images: int) -> tuple[int, int]:
    from django.core.management import call_command

    from registry.manifests import digest_of
    from registry.models import Blob, Manifest, ManifestBlob, Repository, RepositoryBlob, Tag
    from registry.storage import blob_store

    call_command("migrate", verbosity=0)
    if Repository.objects.exists():
        sys.exit("the database already holds repositories: give an empty one")
    store = blob_store()
    rng = random.Random(6)
    repository = Repository.objects.create(name="bench/gc")
    blobs, manifests = [], []
    for number in range(images):
        descriptors = []
        for part in range(3):
            data = rng.randbytes(rng.randint(1024, 16 * 1024))
            upload_id = uuid.uuid4().hex
            state = store.write(upload_id, store.start_upload(upload_id), 0, [data])
            digest = digest_of(data)
            blobs.append(
                Blob(digest=digest, size=len(data), key=store.commit(upload_id, state, digest, len(data)))
            )
            media_type = (
                "application/vnd.oci.image.config.v1+json" if part == 0 else "application/octet-stream"
            )
            descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
        document = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptors[0],
            "layers": descriptors[1:],
            "annotations": {"number": str(number)},
        }
        content = json.dumps(document).encode()
        manifests.append(
            Manifest(
                repository=repository,
                digest=digest_of(content),
                media_type=document["mediaType"],
                size=len(content),
                content=content,
            )
        )
    Blob.objects.bulk_create(blobs, batch_size=1000)
    Manifest.objects.bulk_create(manifests, batch_size=1000)
    by_digest = dict(Blob.objects.values_list("digest", "id"))
    links, references, tags = [], [], []
    for number, manifest in enumerate(Manifest.objects.filter(repository=repository).order_by("id")):
        for blob in blobs[3 * number : 3 * number + 3]:
            links.append(RepositoryBlob(repository=repository, blob_id=by_digest[blob.digest]))
            references.append(ManifestBlob(manifest=manifest, blob_id=by_digest[blob.digest]))
        if number % 2 == 0:
            tags.append(Tag(repository=repository, name=f"v{number}", manifest=manifest))
    RepositoryBlob.objects.bulk_create(links, batch_size=1000)
    ManifestBlob.objects.bulk_create(references, batch_size=1000)
    Tag.objects.bulk_create(tags, batch_size=1000)
    return len(blobs), sum(blob.size for blob in blobs)


def run_gc(*args: str) -> tuple[str, float]:
    env = {"CROW_SECRET_KEY": "bench-" + "x" * 50, **os.environ}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "gc", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")
    import django

    django.setup()
    started = time.perf_counter()
    count, size = fill(options.images)
    seconds = time.perf_counter() - started
    print(f"filled: {count} blobs, {size} bytes, {options.images} manifests in {seconds:.1f}s")
    for args in (["--dry-run"], [], []):
        summary, seconds = run_gc("--untagged", "--grace-period", "0", *args)
        print(f"gc {' '.join(args) or '(real)'}: {summary} | wall {seconds:.1f}s (process start included)")


if __name__ == "__main__":
    main()
