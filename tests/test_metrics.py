"""``/metrics`` on a real server of two workers: every scrape counts every worker's requests.

skopeo pushes and pulls an image (uploads, tokens, manifests, blob downloads);
then many requests on fresh connections, which the kernel spreads over both
workers' sockets; then every scrape, whichever worker answers it, must count
all of them. ``promtool check metrics`` (Debian's ``prometheus`` package) finds
nothing to say about a scrape. Access: loopback always; another address only
with the bearer token (checked through a trusted proxy's ``X-Forwarded-For``).
"""

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client import REGISTRY

from crow.recording import FLUSH_INTERVAL
from registry import metrics
from registry.models import JobRun
from tests import ocilayout
from tests.server import Server
from tests.skopeo import Skopeo

NAME = "team/metrics"
REQUESTS = 120
TOKEN = "scrape-secret"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "CROW_METRICS_TOKEN": TOKEN,
        # Loopback is the proxy: X-Forwarded-For names the client, as behind a real one.
        "CROW_TRUSTED_PROXIES": "127.0.0.0/8",
    }


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = _SAMPLE.match(line)
        assert match, line
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        found.append((match["name"], labels, float(match["value"])))
    return found


def total(text: str, name: str, **wanted: str) -> float:
    return sum(
        value
        for sample, labels, value in samples(text)
        if sample == name and all(labels.get(key) == want for key, want in wanted.items())
    )


def scrape(server: Server, **headers: str) -> requests.Response:
    return requests.get(f"{server.url}/metrics", headers=headers, timeout=30)


def test_every_scrape_counts_every_workers_requests(
    skopeo: Skopeo, registry_server: Server, tmp_path: Path, require_client
) -> None:
    digest = ocilayout.write_image(tmp_path / "in", "v1")
    reference = f"{registry_server.host}/{NAME}:v1"
    skopeo.push(tmp_path / "in", "v1", reference)
    skopeo.pull(reference, tmp_path / "out", "v1")
    token = registry_server.token(NAME)
    for _ in range(REQUESTS):
        # A new connection each: the kernel spreads them over the workers' sockets.
        response = requests.head(
            f"{registry_server.url}/v2/{NAME}/manifests/{digest}",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.oci.image.manifest.v1+json",
            },
            timeout=30,
        )
        assert response.status_code == 200
    time.sleep(2 * FLUSH_INTERVAL)  # each worker writes its tally out every second
    files = list((tmp_path / "metrics").glob("counter_*.db"))
    assert len(files) >= 2, files  # both workers counted requests

    for _ in range(6):
        response = scrape(registry_server)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.text
        # skopeo's HEAD of the digest after its push, if any, adds to these: at least ours.
        heads = total(text, "crow_http_requests_total", operation="manifest_head", status="200")
        assert REQUESTS <= heads <= REQUESTS + 5, heads
        assert total(text, "crow_http_request_duration_seconds_count", operation="manifest_head") == heads
        assert (
            total(text, "crow_http_requests_total", operation="manifest_put", method="PUT", status="201") == 1
        )
        assert total(text, "crow_http_requests_total", operation="blob_upload_start") >= 2
        assert total(text, "crow_http_requests_total", operation="blob_get", status="200") >= 2
        layers = 300_000 + 50_000
        assert (
            total(text, "crow_http_received_bytes_total", operation="blob_upload_finish")
            + total(text, "crow_http_received_bytes_total", operation="blob_upload_chunk")
            >= layers
        )
        assert total(text, "crow_served_bytes_total") >= layers  # pulled: app or pathsend
        assert total(text, "crow_storage_operations_total", backend="filesystem", operation="commit") >= 3
        assert total(text, "crow_tokens_issued_total") >= 2
        assert total(text, "crow_uploads_in_progress") == 0
        assert not any(labels.get("operation", "").startswith("/") for _, labels, _ in samples(text))

    promtool = shutil.which("promtool") or require_client("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout.decode() + result.stderr.decode()
    )


def test_other_clients_need_the_token(registry_server: Server) -> None:
    outside = {"X-Forwarded-For": "203.0.113.9"}
    refused = scrape(registry_server, **outside)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert scrape(registry_server, **outside, Authorization="Bearer wrong").status_code == 401
    allowed = scrape(registry_server, **outside, Authorization=f"Bearer {TOKEN}")
    assert allowed.status_code == 200
    assert "crow_tokens_issued_total" in allowed.text
    # The forwarded address is the proxy's word only from a trusted proxy: a loopback hop is one.
    assert scrape(registry_server, **{"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}).status_code == 401
    assert requests.post(f"{registry_server.url}/metrics", timeout=30).status_code == 405


@pytest.mark.parametrize("server_env", [{"CROW_TRUSTED_PROXIES": "127.0.0.0/8"}])
def test_without_a_token_other_clients_find_nothing(registry_server: Server) -> None:
    assert scrape(registry_server, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 404
    assert scrape(registry_server).status_code == 200


def test_gc_and_backup_runs_in_other_processes_are_scraped(registry_server: Server, tmp_path: Path) -> None:
    before = scrape(registry_server).text
    assert total(before, "crow_job_runs_total", job="gc") == 0
    env = {**registry_server.env, "CROW_SECRET_KEY": "a-test-key-that-is-not-the-development-one-" * 2}
    for command in (["gc"], ["backup", str(tmp_path / "backup")]):
        result = subprocess.run(
            [*_manage(), *command],
            env=env,
            capture_output=True,
            timeout=120,
            cwd=Path(__file__).parent.parent,
        )
        assert result.returncode == 0, result.stderr.decode()
    text = scrape(registry_server).text
    assert total(text, "crow_job_runs_total", job="gc") == 1
    assert total(text, "crow_job_failures_total", job="gc") == 0
    assert total(text, "crow_job_runs_total", job="backup") == 1
    gc = JobRun.objects.get(job="gc")
    assert total(text, "crow_job_last_success_timestamp_seconds", job="gc") == pytest.approx(
        gc.last_success.timestamp()
    )
    assert total(text, "crow_job_last_run_freed_bytes", job="gc") == 0


def _manage() -> list[str]:
    return [sys.executable, "manage.py"]


def test_the_tally_writes_what_observe_would() -> None:
    """``RequestTally.flush`` writes a histogram's buckets itself: the same as ``observe`` per request."""
    durations = [0.0, 0.004, 0.005, 0.0050001, 0.3, 2.5, 9.99, 10.0, 10.5, 120.0]
    edges = [*map(str, metrics.DURATION_BUCKETS), "+Inf"]

    def buckets(operation: str) -> list[float]:
        return [
            REGISTRY.get_sample_value(
                "crow_http_request_duration_seconds_bucket", {"operation": operation, "le": edge}
            )
            or 0.0
            for edge in edges
        ]

    for duration in durations:
        metrics.request_duration.labels("observed").observe(duration)
    tally = metrics.RequestTally()
    for duration in durations:
        tally.add("tallied", "GET", 200, duration, received=3, sent=5, by_path=0)
    tally.flush()
    assert buckets("tallied") == buckets("observed")
    assert REGISTRY.get_sample_value(
        "crow_http_request_duration_seconds_sum", {"operation": "tallied"}
    ) == pytest.approx(sum(durations))
    assert REGISTRY.get_sample_value(
        "crow_http_requests_total", {"operation": "tallied", "method": "GET", "status": "200"}
    ) == len(durations)
    assert REGISTRY.get_sample_value("crow_http_received_bytes_total", {"operation": "tallied"}) == 3 * len(
        durations
    )
    tally.flush()  # nothing twice
    assert REGISTRY.get_sample_value(
        "crow_http_requests_total", {"operation": "tallied", "method": "GET", "status": "200"}
    ) == len(durations)
