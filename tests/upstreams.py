"""Debian's ``docker-registry`` (CNCF distribution, the reference registry) as an upstream for mirror tests.

``reference_registry`` runs one on a free port with its storage in a given
directory, behind a ``TcpProxy`` the test controls (``REFUSE``: the upstream
is down; ``received``: the bytes it sent). ``htpasswd`` (a path) turns its
Basic authentication on.
"""

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests import processes
from tests.server import free_port
from tests.tcpproxy import TcpProxy, proxy_to

CONFIG = """\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {addr}
{auth}"""
HTPASSWD_AUTH = """\
auth:
  htpasswd:
    realm: upstream
    path: {path}
"""
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Upstream:
    direct: str  # host:port of the registry itself (pushes by the test)
    proxy: TcpProxy  # what CRoW goes through
    log: Path

    @property
    def url(self) -> str:
        """The URL CRoW is configured with: through the proxy."""
        return f"http://127.0.0.1:{self.proxy.port}"


@contextmanager
def reference_registry(root: Path, htpasswd: Path | None = None) -> Iterator[Upstream]:
    executable = shutil.which("docker-registry")
    if executable is None:
        pytest.skip("Debian's docker-registry is not installed")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = HTPASSWD_AUTH.format(path=htpasswd) if htpasswd else ""
    config = root / "config.yml"
    config.write_text(CONFIG.format(root=root / "storage", addr=f"127.0.0.1:{port}", auth=auth))
    log = root / "registry.log"
    with open(log, "wb") as output:
        process = processes.spawn(
            [executable, "serve", str(config)], stdout=output, stderr=subprocess.STDOUT, cwd=root
        )
    try:
        _wait_until_ready(process, f"http://127.0.0.1:{port}", log)
        with proxy_to("127.0.0.1", port) as proxy:
            yield Upstream(direct=f"127.0.0.1:{port}", proxy=proxy, log=log)
    finally:
        processes.stop(process)


def _wait_until_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"docker-registry exited with {process.returncode}:\n{log.read_text()}", pytrace=False
            )
        try:
            requests.get(f"{url}/v2/", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"docker-registry did not answer within {START_TIMEOUT}s:\n{log.read_text()}", pytrace=False)
