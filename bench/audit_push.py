"""What the audit row costs a manifest push: PUTs through Django in-process, with and without it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crow_bench .venv/bin/python -m bench.audit_push

Migrates the database it is given, then times ``ROUNDS`` rounds of ``PUSHES``
manifest PUTs (each a new tag, so a push plus, every other time, a tag move)
with the audit row and with ``registry.events.audit.pushed`` replaced by a
no-op, alternating; prints the median per push of each. In-process, so it
measures the database round trip and the Python around it, not HTTP.
"""

import json
import os
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")
os.environ.setdefault("CROW_AUTH_DISABLED", "1")
os.environ.setdefault("CROW_ALLOWED_HOSTS", "testserver")  # Django's test client

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from registry.events import audit  # noqa: E402
from tests import oci  # noqa: E402

ROUNDS, PUSHES = 7, 200


def main() -> None:
    call_command("migrate", verbosity=0)
    client = Client()
    image = oci.image(f"bench-{time.time()}")
    name = "bench/audit"
    for blob in image.blobs:
        oci.push_blob(client, name, blob)
    real, timings = audit.pushed, {"with audit": [], "without": []}
    for round_ in range(ROUNDS):
        for label in ("with audit", "without") if round_ % 2 == 0 else ("without", "with audit"):
            audit.pushed = real if label == "with audit" else (lambda *args, **kwargs: None)
            started = time.perf_counter()
            for n in range(PUSHES):
                oci.push_manifest(client, name, f"{label[:4]}-{round_}-{n % 2}", image.manifest)
            timings[label].append((time.perf_counter() - started) / PUSHES * 1000)
    audit.pushed = real
    print(json.dumps({label: f"{statistics.median(ms):.3f} ms/push" for label, ms in timings.items()}))


if __name__ == "__main__":
    main()
