"""A real CRoW server process: ``python -m crow.serve`` (granian), as ``make run`` starts it.

The server runs on a free loopback port against the test database and the
test's own blob root. Its tests need ``transactional_db``: the server is
another process and only sees committed rows. Every test that uses
``registry_server`` is marked ``realserver``; a test that starts a server
otherwise (``running``, ``server``) must carry the marker itself, or it
fails. When one fails, the server's log is attached to its report. Servers
start in process groups of their own (``tests.processes``): ``stop`` ends the
main process and its workers.

Authentication stays on, as in production: clients log in as a robot account
allowed to pull, push and delete in ``team/*`` (what a CI job would use; a
robot's secret is checked in microseconds, a user's password in most of a
second) and go through the token service like any registry client.
"""

import fcntl
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import pytest
import requests
import urllib3
from django.contrib.auth import get_user_model
from django.db import connection

from registry.auth import robots
from registry.auth.models import DELETE, PULL, PUSH
from tests.processes import spawn, stop  # stop: other modules take it from here

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
SERVE = [sys.executable, "-m", "crow.serve"]  # the command that starts a server

_log_key = pytest.StashKey[Path]()
_current: list[pytest.Item] = []  # the test being run, for the marker check of ``server``


REPOSITORIES = "team/*"  # what the test robot may pull, push and delete


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:PORT (https:// with CROW_TLS_CERT)
    host: str  # 127.0.0.1:PORT, as clients name the registry
    log: Path
    username: str
    password: str
    env: dict[str, str]  # the process's environment: another replica starts from it

    @property
    def credentials(self) -> str:
        """``username:password``, as skopeo's ``--creds`` takes them."""
        return f"{self.username}:{self.password}"

    def token(self, *names: str) -> str:
        """A bearer token from the server's token service for pull, push and delete in ``names``."""
        response = requests.get(
            f"{self.url}/token",
            params={"scope": [f"repository:{name}:{PULL},{PUSH},{DELETE}" for name in names]},
            auth=(self.username, self.password),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def session(self, *names: str) -> requests.Session:
        """A session that sends a token for ``names`` (default ``team/app``) with every request."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token(*(names or ('team/app',)))}"
        return session


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database that ``settings_dict`` describes (the test database)."""
    engine = settings_dict["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    if engine != "django.db.backends.postgresql":
        raise NotImplementedError(f"no DATABASE_URL for {engine}")
    credentials = quote(settings_dict["USER"] or "", safe="")
    if settings_dict["PASSWORD"]:
        credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = quote(settings_dict["HOST"] or "", safe="")
    port = f":{settings_dict['PORT']}" if settings_dict["PORT"] else ""
    return f"postgres://{credentials}@{host}{port}/{quote(settings_dict['NAME'], safe='')}"


# free_port hands out ports below the kernel's ephemeral range, which it never picks for a bind to
# port 0 or an outgoing connection; a lock file per port keeps concurrent test runs apart, and the
# ports this process handed out stay reserved (their lock files open) until it ends.
_PORT_LOCKS = Path(tempfile.gettempdir()) / "crow-test-ports"
_reserved: dict[int, IO[str]] = {}
_random = random.Random()


def free_port() -> int:
    """A loopback port nothing listens on, never handed out twice in this run or a concurrent one."""
    ports = _port_range()
    start = _random.randrange(len(ports))
    _PORT_LOCKS.mkdir(exist_ok=True)
    for index in range(len(ports)):
        port = ports[(start + index) % len(ports)]
        if port in _reserved:
            continue
        lock = open(_PORT_LOCKS / str(port), "a")  # noqa: SIM115 - held open: the reservation
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another test run has it
            lock.close()
            continue
        if _bindable(port):
            _reserved[port] = lock
            return port
        lock.close()
    raise RuntimeError(f"no free port in {ports}")


def _port_range() -> range:
    """Ports under the ephemeral range (``ip_local_port_range``, usually 32768-60999)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(low - 12000, low) if low >= 13024 else range(20000, 30000)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_until_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            # Any answer will do (401 included): a worker has loaded the application.
            with warnings.catch_warnings():  # HTTPS with a test certificate: only whether it answers
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                requests.get(f"{url}/v2/", timeout=10, verify=False)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    pytest.fail(f"the server did not answer within {START_TIMEOUT}s:\n{log.read_text()}", pytrace=False)


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment for the server process; override it to configure the server."""
    return {}


@pytest.fixture
def registry_server(
    request: pytest.FixtureRequest,
    transactional_db: None,
    blob_root: Path,
    tmp_path: Path,
    server_env: dict[str, str],
) -> Iterator[Server]:
    owner = get_user_model().objects.create_superuser("ci-owner", email="", password=None)
    robot, secret = robots.create(owner, "ci", REPOSITORIES, frozenset({PULL, PUSH, DELETE}))
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CROW_BLOB_ROOT": str(blob_root),
        # Whatever else the server keeps (its token signing key) stays with the test too.
        "CROW_VAR_DIR": str(tmp_path / "var"),
        "CROW_BIND": f"127.0.0.1:{port}",
        "CROW_WORKERS": "2",
        "CROW_THREADS": "4",
        # As in production, whatever the developer's shell says.
        "CROW_AUTH_DISABLED": "0",
        # No webhook delivery worker (a database connection polling each second) unless a test wants one.
        "CROW_WEBHOOK_WORKER": "0",
        **server_env,
    }
    request.node.stash[_log_key] = log
    with running(env, log) as url:
        yield Server(
            url=url,
            host=url.partition("://")[2],
            log=log,
            username=robot.username,
            password=secret,
            env=env,
        )


def open_environment(tmp_path: Path, blob_root: Path, **settings: str) -> dict[str, str]:
    """A server's environment outside ``registry_server``: anonymous access, a free port, the test's
    own blob root and var dir; ``settings`` add or override variables."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "CROW_BLOB_ROOT": str(blob_root),
        "CROW_VAR_DIR": str(tmp_path / "var"),
        "CROW_BIND": f"127.0.0.1:{free_port()}",
        "CROW_AUTH_DISABLED": "1",
        "CROW_WEBHOOK_WORKER": "0",
        **settings,
    }


def server(env: dict[str, str], output: IO[bytes]) -> subprocess.Popen:
    """``python -m crow.serve`` with ``env``, in a process group of its own (``stop`` it).

    The running test must be marked ``realserver``: else it fails here.
    """
    if _current and _current[-1].get_closest_marker("realserver") is None:
        pytest.fail(f"{_current[-1].nodeid} starts a server: mark it realserver", pytrace=False)
    return spawn(
        SERVE,
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def started(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """A server with ``env`` (``CROW_BIND`` says where), answering: its process (``stop`` it) and URL."""
    with open(log, "wb") as output:
        process = server(env, output)
    try:
        url = f"{'https' if env.get('CROW_TLS_CERT') else 'http'}://{env['CROW_BIND']}"
        _wait_until_ready(process, url, log)
    except BaseException:
        stop(process)
        raise
    return process, url


@contextmanager
def running(env: dict[str, str], log: Path) -> Iterator[str]:
    """A server with ``env`` (``CROW_BIND`` says where) until the block ends; yields its URL."""
    process, url = started(env, log)
    try:
        yield url
    finally:
        stop(process)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    _current.append(item)
    try:
        return (yield)
    finally:
        _current.remove(item)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "registry_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realserver)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    log = item.stash.get(_log_key, None)
    if report.failed and report.when == "call" and log is not None and log.exists():
        report.sections.append(("registry server log", log.read_text(errors="replace")))
    return report
