"""The two registries under test, started and stopped by the benchmark.

CRoW runs as in production: ``python -m crow.serve`` (granian), a fresh
PostgreSQL database, ``CROW_DEBUG=0``, a random secret key, filesystem storage.
The reference is CNCF distribution from Debian's ``docker-registry`` package
with the config it ships, minus auth. Both serve plain HTTP on a free loopback
port and keep their bytes in the work directory, so they share one disk. Each
server runs in its own session, so that stopping it reaches every process it
started, whatever happens to the benchmark.
"""

import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "crow_bench"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 40.0  # CROW_GRACEFUL_TIMEOUT is 30 s
# The command each step needs, and the Debian package that has it.
PACKAGES = {
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "wrk": "wrk",
    "ab": "apache2-utils",
    "iperf3": "iperf3",
    "psql": "postgresql-client",
    "unshare": "util-linux",
}

REFERENCE_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {addr}
  headers:
    X-Content-Type-Options: [nosniff]
"""


@dataclass(frozen=True)
class Server:
    name: str
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen
    log: Path
    postgres: str | None = None  # CRoW's: its database backends do part of its work
    database: str = DATABASE

    def roots(self) -> list[int]:
        """The processes whose CPU time is this server's: its own, and its database backends."""
        if self.postgres is None:
            return [self.pid]
        query = f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.database}'"
        command = ["psql", f"{self.postgres}/postgres", "--tuples-only", "--no-align", "-c", query]
        found = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
        return [self.pid, *map(int, found.stdout.split())]

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def pid(self) -> int:
        return self.process.pid


def ensure_tools() -> None:
    """Install from Debian's packages whatever command the benchmark lacks."""
    missing = sorted({package for command, package in PACKAGES.items() if shutil.which(command) is None})
    if not missing:
        return
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if os.geteuid() != 0:
        raise SystemExit(f"the benchmark needs {', '.join(missing)}: run `sudo {' '.join(install)}`")
    print(f"installing {', '.join(missing)} from Debian's packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True, timeout=900)
        subprocess.run(install, env=env, check=True, timeout=900)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def reference(work: Path) -> Iterator[Server]:
    root = _fresh(work / "reference")
    port = free_port()
    config = root / "config.yml"
    config.write_text(REFERENCE_CONFIG.format(root=root / "storage", addr=f"127.0.0.1:{port}"))
    command = [shutil.which("docker-registry") or "docker-registry", "serve", str(config)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}
    try:
        with _serve("reference", command, env, f"http://127.0.0.1:{port}", root / "server.log") as server:
            yield server
    finally:
        shutil.rmtree(root / "storage", ignore_errors=True)  # gigabytes; the log stays


@contextmanager
def crow(
    work: Path,
    postgres: str,
    workers: int | None,
    threads: int | None,
    extra: dict[str, str] | None = None,
    database: str | None = None,
) -> Iterator[Server]:
    """CRoW on a database created for this run and dropped after it, whatever happens.

    ``extra`` adds or overrides environment variables (``bench.hot_reads`` compares settings with it);
    ``database`` defaults to ``DATABASE``.
    """
    database = database or DATABASE
    root = _fresh(work / "crow")
    port = free_port()
    env = {
        **_without_settings(os.environ),
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "DATABASE_URL": f"{postgres}/{database}",
        "CROW_DEBUG": "0",
        "CROW_SECRET_KEY": secrets.token_urlsafe(50),
        "CROW_VAR_DIR": str(root / "var"),
        "CROW_STORAGE": "filesystem",
        "CROW_BLOB_ROOT": str(root / "blobs"),
        "CROW_BIND": f"127.0.0.1:{port}",
        # Both registries serve anonymous clients: the benchmark measures the protocol, not logins.
        "CROW_AUTH_DISABLED": "1",
        # The reference logs at "warn" (REFERENCE_CONFIG), so no line per request: neither does CRoW.
        "CROW_ACCESS_LOG": "0",
    }
    if workers:
        env["CROW_WORKERS"] = str(workers)
    if threads:
        env["CROW_THREADS"] = str(threads)
    env.update(extra or {})
    log = root / "server.log"
    _psql(postgres, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    _psql(postgres, f"CREATE DATABASE {database}")
    try:
        with open(log, "ab") as output:
            migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
            done = subprocess.run(
                migrate, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=300
            )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py migrate failed; see {log}")
        command = [sys.executable, "-m", "crow.serve"]
        with _serve("CRoW", command, env, f"http://127.0.0.1:{port}", log) as started:
            yield dataclasses.replace(started, postgres=postgres, database=database)
    finally:
        _psql(postgres, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(root / "blobs", ignore_errors=True)


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _without_settings(environ: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """The caller's environment minus anything that configures CRoW or granian."""
    dropped = ("DATABASE_URL", "PORT", "DJANGO_SETTINGS_MODULE")
    return {
        key: value
        for key, value in environ.items()
        if not key.startswith(("CROW_", "GRANIAN_")) and key not in dropped
    }


def _psql(postgres: str, statement: str) -> None:
    command = ["psql", f"{postgres}/postgres", "--quiet", "-v", "ON_ERROR_STOP=1", "-c", statement]
    env = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}  # no "does not exist, skipping"
    subprocess.run(command, check=True, timeout=60, stdout=subprocess.DEVNULL, env=env)


@contextmanager
def _serve(name: str, command: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[Server]:
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, url, log)
        yield Server(name=name, url=url, process=process, log=log)
    finally:
        _stop(process)


def _wait_until_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}; see {log}")
        try:
            requests.get(f"{url}/v2/", timeout=5)
            return
        except requests.RequestException:  # not listening yet, or its workers still booting
            time.sleep(0.1)
    raise RuntimeError(f"{url}: the server did not answer within {START_TIMEOUT:.0f} s; see {log}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT)
    # Whatever of the server's session outlived it (a stuck worker) goes too.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
