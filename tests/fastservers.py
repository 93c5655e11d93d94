"""Real servers for the fast path's tests, on the test database, and what a client sees of them."""

import http.client
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from tests.server import database_url, free_port, running


@contextmanager
def granian(tmp_path: Path, label: str, workers: int = 1, **settings: str) -> Iterator[int]:
    """A server (``python -m crow.serve``) with ``settings`` on the test database until the block ends;
    yields its port. Its log is ``server-<label>.log`` in ``tmp_path``."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CROW_VAR_DIR": str(tmp_path / "var"),
        "CROW_ACCESS_LOG": "0",
        "CROW_WORKERS": str(workers),
        "CROW_BIND": f"127.0.0.1:{port}",
        **settings,
    }
    with running(env, tmp_path / f"server-{label}.log"):
        # The fast path serves once its listener is up: a moment after the first answer at most.
        time.sleep(0.5)
        yield port


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """What a client sees: the status, the headers (but Date) sorted, and the body. A request id is
    new with each request: only its presence is kept (``X-Request-ID: <id>``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        content = response.read()
        seen = sorted(
            (k.lower(), "<id>" if k.lower() == "x-request-id" else v)
            for k, v in response.getheaders()
            if k.lower() != "date"
        )
        return response.status, seen, content
    finally:
        conn.close()
