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


def assert_unready_for(server: Server, check: str, probes: int = 4) -> dict[str, str]:
    """``/readyz`` answers 503 within ``BOUND`` naming ``check`` alone, ``probes`` times (whichever worker
    answers, and while a hung check is still in flight), and ``/healthz`` 200 throughout; the checks."""
    for _ in range(probes):
        response, elapsed = probe(server, "/readyz")
        assert response.status_code == 503, response.text
        assert elapsed < BOUND
        checks = response.json()["checks"]
        assert checks[check] != "ok"
        assert {name for name, why in checks.items() if why != "ok"} == {check}
        healthy, elapsed = probe(server, "/healthz")
        assert healthy.status_code == 200 and elapsed < BOUND
    return checks
