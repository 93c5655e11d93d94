"""``/healthz`` and ``/readyz`` asked as a kubelet asks them: timed, with the pod's address as ``Host``."""

import time

import requests

from tests.server import Server

BOUND = 4.0  # seconds: readiness waits 2 s for its checks


def probe(server: Server, path: str) -> tuple[requests.Response, float]:
    """The answer to ``GET path`` and how long it took."""
    started = time.monotonic()
    # A kubelet names the pod's address: a Host that ALLOWED_HOSTS does not list.
    response = requests.get(f"{server.url}{path}", headers={"Host": "10.1.2.3:8080"}, timeout=30)
    return response, time.monotonic() - started


def ready_again(server: Server, within: float) -> requests.Response:
    """``/readyz``'s first 200 within ``within`` seconds, else its last answer."""
    deadline = time.monotonic() + within
    while True:
        response, _ = probe(server, "/readyz")
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)
