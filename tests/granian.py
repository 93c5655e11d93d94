"""Real granian servers (``crow.asgi``) for the fast path's tests, on the test database."""

import http.client
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from tests.processes import spawn, stop
from tests.server import ROOT, database_url, free_port

GRANIAN = Path(sys.executable).parent / "granian"


@contextmanager
def granian(tmp_path: Path, label: str, workers: int = 1, **settings: str) -> Iterator[int]:
    """A granian server with ``settings`` on the test database until the block ends; yields its port."""
    port = free_port()
    log = tmp_path / f"granian-{label}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CROW_VAR_DIR": str(tmp_path / "var"),
        "CROW_ACCESS_LOG": "0",
        **settings,
    }
    command = [str(GRANIAN), "--interface", "asgi", "--http", "1", "--no-ws", "--workers", str(workers)]
    with open(log, "wb") as output:
        process = spawn(
            [*command, "--port", str(port), "crow.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=output,
        )
    try:
        _wait(process, port, log)
        yield port
    finally:
        stop(process)


def _wait(process, port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"granian exited with {process.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/v2/")
            conn.getresponse().read()
            conn.close()
            # The fast path serves once its listener is up: a moment after the first answer at most.
            time.sleep(0.5)
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"granian did not answer within 30s:\n{log.read_text()}", pytrace=False)


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """What a client sees: the status, the headers (but Date) sorted, and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        content = response.read()
        seen = sorted((k.lower(), v) for k, v in response.getheaders() if k.lower() != "date")
        return response.status, seen, content
    finally:
        conn.close()
