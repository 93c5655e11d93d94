"""Debian's ``docker-registry`` (CNCF distribution, the reference registry) as an upstream for mirror tests.

``reference_registry`` runs one on a free port with its storage in a given
directory, behind a ``TcpProxy`` the test controls (``REFUSE``: the upstream
is down; ``received``: the bytes it sent).
"""

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
def reference_registry(executable: str, root: Path) -> Iterator[Upstream]:
    """``executable``: ``require_client("docker-registry")`` (a skip, or a failure in CI, without it)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(CONFIG.format(root=root / "storage", addr=f"127.0.0.1:{port}"))
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
