"""A real HTTP receiver for webhook deliveries: a ``ThreadingHTTPServer`` on a free loopback port.

It records every POST (headers and body) as it arrives, answers with
``status`` (200 unless a test says otherwise), can hold its answer back
(``hold``) to catch a sender mid-request, and can be stopped and started again
on the same port (a receiver that is down, then back).
"""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.server import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def document(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> dict[str, Any]:
        (event,) = self.document["events"]
        return event

    def signed_with(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("X-Crow-Signature", ""), expected)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[Received] = []
        self.answered: list[Received] = []  # those whose answer was sent
        self.status = 200
        self.hold = threading.Event()  # set: answers wait until it is cleared
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                got = Received(dict(self.headers.items()), self.rfile.read(length))
                receiver.received.append(got)
                while receiver.hold.is_set():
                    time.sleep(0.05)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.answered.append(got)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 30.0, answered: bool = True) -> list[Received]:
        """The first ``count`` deliveries (answered ones, unless ``answered`` is False) once there."""
        seen = self.answered if answered else self.received
        deadline = time.monotonic() + timeout
        while len(seen) < count:
            assert time.monotonic() < deadline, f"{len(seen)} deliveries of {count} after {timeout}s"
            time.sleep(0.05)
        return seen[:count]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free port, for one test."""
    started = Receiver().start()
    yield started
    started.hold.clear()
    started.stop()
