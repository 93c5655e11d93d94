"""What a server process costs before it serves anything: imports, memory, per configuration.

    .venv/bin/python -m bench.footprint             # import crow.asgi in a fresh process, per configuration
    .venv/bin/python -m bench.footprint --server    # and the PSS of an idle granian tree (2 workers)
    .venv/bin/python -m bench.footprint --root DIR  # measure another checkout (a before/after pair)

Configurations: filesystem store on SQLite (the embedded default), filesystem
on PostgreSQL, S3 on PostgreSQL (settings only: nothing here talks to S3); an
open registry, as ``make run`` serves, or with ``--auth`` authentication on.
Per configuration, in a fresh interpreter: seconds to import ``crow.asgi``,
modules loaded, RSS, USS (private pages) and PSS, and which of the large
optional packages got imported. ``--server`` starts ``granian --interface asgi
--http 1 --workers 2`` on the same settings and sums ``Pss`` over
``/proc/<pid>/smaps_rollup`` of the whole process tree once it answers
``/v2/`` and has idled a few seconds: what the server costs the machine,
shared pages counted once. Memory figures move by a MiB or two between runs.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.processes import descendants
from bench.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgres://postgres@127.0.0.1:5432"
# The packages a configuration may not need: each is reported as imported or not.
OPTIONAL = (
    "boto3",
    "botocore",
    "rest_framework.views",
    "drf_spectacular.views",
    "requests",
    "yaml",
    "django.test",
    "django.contrib.postgres.fields",
    "psycopg",
    "jwt",
    "cryptography.x509",
    "redis",
    "tqdm",
)
S3 = {
    "CROW_STORAGE": "s3",
    "CROW_S3_BUCKET": "footprint",
    "CROW_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    "CROW_S3_ACCESS_KEY_ID": "footprint",
    "CROW_S3_SECRET_ACCESS_KEY": "footprint",
}
PROBE = """
import json, sys, time
started = time.perf_counter()
import crow.asgi
seconds = time.perf_counter() - started
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
rows = [line.split() for line in open("/proc/self/smaps_rollup")]
rollup = {row[0].rstrip(":"): int(row[1]) for row in rows if row[1:2] and row[1].isdigit()}
print(json.dumps({
    "seconds": seconds,
    "modules": len(sys.modules),
    "rss": int(status["VmRSS"].split()[0]),
    "uss": rollup["Private_Clean"] + rollup["Private_Dirty"],
    "pss": rollup["Pss"],
    "optional": [name for name in %r if name in sys.modules],
}))
"""


def configurations(database: str) -> dict[str, dict[str, str]]:
    postgres = {"DATABASE_URL": f"{POSTGRES}/{database}"}
    return {
        "filesystem + SQLite": {},
        "filesystem + PostgreSQL": postgres,
        "S3 + PostgreSQL": {**postgres, **S3},
    }


def environment(root: Path, var: Path, settings: dict[str, str], auth: bool) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("CROW_") and k != "DATABASE_URL"}
    return {
        **keep,
        "PYTHONPATH": str(root),
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "CROW_VAR_DIR": str(var),
        "CROW_DEBUG": "0",
        "CROW_SECRET_KEY": secrets.token_urlsafe(50),
        "CROW_AUTH_DISABLED": "0" if auth else "1",
        "CROW_LOG_LEVEL": "ERROR",
        **settings,
    }


def imports(root: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (OPTIONAL,)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def server_pss(root: Path, env: dict[str, str], workers: int, idle: float) -> tuple[int, int]:
    """Summed PSS (KiB) of an idle granian tree on ``env``, and how many processes it has."""
    port = free_port()
    granian = Path(sys.executable).parent / "granian"
    command = [
        str(granian),
        "--interface=asgi",
        "--http=1",
        f"--workers={workers}",
        "--no-ws",
        "--host=127.0.0.1",
        f"--port={port}",
        "--log-level=warning",
        "crow.asgi:application",
    ]
    process = subprocess.Popen(
        command,
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=5).close()
                break
            except urllib.error.HTTPError:
                break  # an answer all the same: 401 with authentication on
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"granian did not answer /v2/ (exit status {process.poll()})"
                    ) from None
                time.sleep(0.2)
        time.sleep(idle)  # every worker booted, nothing in flight
        tree = descendants(process.pid)
        return sum(_pss(pid) for pid in tree), len(tree)
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass  # ended while we looked
    return 0


def _migrate(root: Path, env: dict[str, str]) -> None:
    manage = [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity=0"]
    subprocess.run(manage, cwd=root, env=env, check=True, timeout=300, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--database", default="crow", help="PostgreSQL database (it must exist)")
    parser.add_argument("--server", action="store_true", help="also measure an idle granian tree")
    parser.add_argument("--auth", action="store_true", help="authentication on (default: an open registry)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds to idle before reading PSS")
    args = parser.parse_args()
    root = args.root.resolve()
    with tempfile.TemporaryDirectory(prefix="crow-footprint-") as var:
        (Path(var) / "static").mkdir()  # WhiteNoise warns in every process without it
        for name, settings in configurations(args.database).items():
            env = environment(root, Path(var), settings, args.auth)
            got = imports(root, env)
            rss, uss, pss = (got[key] / 1024 for key in ("rss", "uss", "pss"))
            print(
                f"{name:24} import {got['seconds']:.2f} s, {got['modules']} modules, "
                f"RSS {rss:.1f} MiB, USS {uss:.1f} MiB, PSS {pss:.1f} MiB; "
                f"imported: {', '.join(got['optional']) or 'none of the optional'}",
                flush=True,
            )
            if args.server:
                _migrate(root, env)
                pss, count = server_pss(root, env, args.workers, args.idle)
                print(f"{'':24} granian idle, {count} processes: PSS {pss / 1024:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
