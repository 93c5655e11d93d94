"""Fixtures for every test: a private blob root and the real clients.

The real server (``registry_server``) comes from ``tests.server``, moto's S3 server
(``s3_server``, ``s3_bucket``, ...) from ``tests.s3server``; ``tests.processes`` starts
and stops every process a test runs, in a process group of its own.
"""

import importlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
from pytest_django.fixtures import Settings

# Helper modules assert too; rewrite them (before importing them) for pytest's messages.
pytest.register_assert_rewrite(
    "tests.processes",
    "tests.server",
    "tests.s3server",
    "tests.skopeo",
    "tests.ocilayout",
    "tests.haproxy",
    "tests.fleet",
    "tests.accesslog",
    "tests.probes",
)

from registry.maintenance import readonly  # noqa: E402
from tests.receiver import receiver  # noqa: E402, F401 - the webhook receiver fixture
from tests.server import Server  # noqa: E402
from tests.skopeo import Skopeo  # noqa: E402

pytest_plugins = ["tests.processes", "tests.server", "tests.s3server"]

SYSTEM_BINARIES = "/usr/sbin:/sbin"  # not on a non-root user's PATH


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``all_backends`` run once on the filesystem store and once on S3 (moto)."""
    if metafunc.definition.get_closest_marker("all_backends"):
        metafunc.fixturenames.append("storage_backend")
        metafunc.parametrize("storage_backend", ["filesystem", "s3"], indirect=True)


@pytest.fixture(autouse=True)
def _all_backends(request: pytest.FixtureRequest) -> None:
    """Set up ``storage_backend`` for an ``all_backends`` test that does not name it: a name
    ``pytest_generate_tests`` adds is parametrized but not in the test's fixture closure, so it
    would never be set up and the ``s3`` run would use the filesystem."""
    if request.node.get_closest_marker("all_backends"):
        request.getfixturevalue("storage_backend")


@pytest.fixture
def storage_backend(request: pytest.FixtureRequest) -> str:
    """The blob store a parametrised test runs on; S3 means a fresh bucket on moto's server.

    In-process tests read blob bytes from the response, so S3 downloads are
    proxied here; ``test_real_s3`` follows the redirects with real clients.
    """
    if request.param == "s3":
        request.getfixturevalue("s3_settings").CROW_S3_REDIRECT = False
    return request.param


@pytest.fixture(autouse=True)
def open_registry(request: pytest.FixtureRequest, settings: Settings) -> None:
    """Protocol tests run against an open registry; tests marked ``auth`` keep authentication on."""
    if request.node.get_closest_marker("auth") is None:
        settings.CROW_AUTH_DISABLED = True


@pytest.fixture(autouse=True)
def _read_only_switch_forgotten() -> Iterator[None]:
    """Each process caches the read-only switch for a second (``registry.maintenance.readonly``): no
    test sees another's, whose row its database's rollback or flush removed."""
    readonly.forget()
    yield
    readonly.forget()


@pytest.fixture(autouse=True)
def blob_root(settings: Settings, tmp_path: Path) -> Path:
    """Each test stores its blobs apart; ``registry.storage`` rebuilds its store on the change."""
    settings.CROW_BLOB_ROOT = tmp_path / "blobs"
    return settings.CROW_BLOB_ROOT


@pytest.fixture(autouse=True)
def _fresh_mirror_routes() -> None:
    """Each test starts with no upstream remembered: a test's rolled-back rows fire no signal, so
    another test's upstream would still route its prefix (``registry.mirror.routing``'s cache)."""
    from registry.mirror import routing

    routing.invalidate()


def _missing(what: str) -> NoReturn:
    # In CI (CROW_REQUIRE_CLIENTS=1) a missing client is a broken build, not a reason to skip.
    if os.environ.get("CROW_REQUIRE_CLIENTS") == "1":
        pytest.fail(f"{what} is required (CROW_REQUIRE_CLIENTS=1) but missing", pytrace=False)
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def require_client() -> Callable[[str], str]:
    """``require_client("skopeo")``: the executable's path, or skip (fail in CI) without it.

    Daemons such as haproxy are in /usr/sbin, on root's PATH only: looked for there too."""

    def find(name: str) -> str:
        path = shutil.which(name) or shutil.which(name, path=SYSTEM_BINARIES)
        if path is None:
            _missing(f"the {name} executable")
        return path

    return find


@pytest.fixture(scope="session")
def require_module() -> Callable[[str], ModuleType]:
    """``require_module("oras.client")``: the imported module, or skip (fail in CI) without it."""

    def load(name: str) -> ModuleType:
        try:
            return importlib.import_module(name)
        except ImportError:
            _missing(f"the Python package {name.split('.')[0]}")

    return load


@pytest.fixture
def skopeo_path(require_client: Callable[[str], str]) -> str:
    return require_client("skopeo")


@pytest.fixture
def skopeo(skopeo_path: str, registry_server: Server) -> Skopeo:
    """skopeo with the test server's credentials; without skopeo, skips before starting the server."""
    return Skopeo(skopeo_path, creds=registry_server.credentials)


@pytest.fixture
def oras_module(require_module: Callable[[str], ModuleType]) -> ModuleType:
    return require_module("oras.client")


@pytest.fixture
def oras(oras_module: ModuleType, registry_server: Server) -> Any:
    """An ``oras.client.OrasClient`` for the test server, logged in as its robot.

    oras-py's "basic" backend sends the robot's credentials with every request.
    Its default "token" backend keeps the first token it gets (pull only, from
    the challenge to a HEAD) and, answered 401 ``insufficient_scope`` when it
    then pushes, retries with that same token: it asks for a new token only
    after a 403. Docker's clients, skopeo and the Go oras ask for a new token.
    """
    client = oras_module.OrasClient(hostname=registry_server.host, insecure=True, auth_backend="basic")
    # What OrasClient.login does first, without writing the credentials to ~/.docker/config.json.
    client.auth.set_basic_auth(registry_server.username, registry_server.password)
    return client
