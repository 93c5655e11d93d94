"""``/healthz``, ``/readyz`` and ``/metrics``, answered by ``crow.asgi`` before Django sees the request.

Here rather than in Django's URLconf: a probe must answer whatever ``Host`` a
load balancer or the kubelet sends (Django refuses one not in
``ALLOWED_HOSTS``), ``/healthz`` must answer while every Django thread is
busy, and none of them needs a session, a CSRF check or a route.

- ``/healthz``: 200, no I/O: the process runs its event loop.
- ``/readyz``: 200 when the database and the blob store answer within 2 s
  (``registry.readiness``), else 503 with JSON naming what failed. Its body also
  says whether the registry is read-only (``"read_only": true``): a read-only
  replica is ready, it serves pulls.
- ``/metrics``: the Prometheus text format, every worker's values
  (prometheus-client's multiprocess mode, whose directory ``crow.serve`` sets)
  plus the maintenance jobs' last runs from the database (``JobRuns``).
  Loopback clients (after ``CROW_TRUSTED_PROXIES``) always get it; any other
  client needs ``Authorization: Bearer <CROW_METRICS_TOKEN>`` (401 without
  it), and with no token set the endpoint does not exist for them (404).

All three take GET and HEAD (405 otherwise) and need no credentials but the
metrics token.
"""

import asyncio
import glob
import hmac
import ipaddress
import json
import logging
import os
import re

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from crow import recording
from registry import readiness
from registry.db import connections
from registry.maintenance import readonly
from registry.models import JobRun

log = logging.getLogger(__name__)

PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_JSON = (b"content-type", b"application/json")
_LIVE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db$")


async def serve(scope: dict, receive, send) -> None:
    path = scope["path"]
    head = scope["method"] == "HEAD"
    if scope["method"] not in ("GET", "HEAD"):
        await _answer(send, 405, b'{"error": "method not allowed"}\n', [_JSON, (b"allow", b"GET, HEAD")])
    elif path == "/healthz":
        await _answer(send, 200, b'{"status": "ok"}\n', [_JSON], head)
    elif path == "/readyz":
        failed = await asyncio.to_thread(readiness.failures)
        checks = {name: failed.get(name, "ok") for name in readiness.CHECKS}
        found = {"status": "unavailable" if failed else "ready", "checks": checks}
        if "database" not in failed:
            found["read_only"] = await asyncio.to_thread(read_only)
        body = json.dumps(found).encode() + b"\n"
        await _answer(send, 503 if failed else 200, body, [_JSON], head)
    else:
        refusal = _refusal(scope)
        if refusal is not None:
            await _answer(send, *refusal, head=head)
        else:
            recording.tally.flush()  # this worker's latest; the others' are at most a second old
            body = await asyncio.to_thread(exposition)
            await _answer(send, 200, body, [(b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode())], head)


async def _answer(send, status: int, body: bytes, headers: list, head: bool = False) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


def _refusal(scope: dict) -> tuple[int, bytes, list] | None:
    """Why this client may not read the metrics (status, body, headers), or None if it may."""
    record = scope.get("crow.record")
    client = record.client if record is not None else (scope.get("client") or ("",))[0]
    if _is_loopback(client):
        return None
    token = settings.CROW_METRICS_TOKEN
    if not token:
        return 404, b'{"error": "not found"}\n', [_JSON]
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, given = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
                return None
    return (
        401,
        b'{"error": "a bearer token is required"}\n',
        [_JSON, (b"www-authenticate", b'Bearer realm="metrics"')],
    )


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == ""  # a Unix socket: only this host connects


def exposition() -> bytes:
    """Every metric in the Prometheus text format, for this process or, in multiprocess mode, all."""
    read_only()  # sets crow_read_only to what the database says now
    registry = CollectorRegistry()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        _forget_dead_workers(directory)
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_ThisProcess())
    registry.register(JobRuns())
    return generate_latest(registry)


def read_only() -> bool | None:
    """Whether the registry is read-only (``registry.maintenance``); None if that cannot be read."""
    close_old_connections()
    try:
        return readonly.is_on()
    except DatabaseError as exc:
        log.warning("the read-only switch cannot be read: %s", exc)
        return None
    finally:
        connections.release()


def _forget_dead_workers(directory: str) -> None:
    """A worker killed without a goodbye left its live gauges (uploads in progress): drop them."""
    for path in glob.glob(os.path.join(directory, "gauge_live*.db")):
        match = _LIVE_FILE.search(os.path.basename(path))
        if match is None:
            continue
        pid = int(match[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, directory)
        except PermissionError:
            pass  # alive, someone else's


def worker_stopped() -> None:
    """A worker's lifespan ends: its live gauges stop counting (its counters stay)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        mark_process_dead(os.getpid(), directory)


class _ThisProcess:
    def collect(self):
        return REGISTRY.collect()


class JobRuns:
    """The maintenance jobs' latest runs (``registry.models.JobRun``), read at each scrape."""

    def collect(self):
        close_old_connections()
        try:
            runs = list(JobRun.objects.all())
        except DatabaseError as exc:
            log.warning("metrics: the jobs' runs cannot be read: %s", exc)
            return
        finally:
            connections.release()
        families = {
            "runs": CounterMetricFamily("crow_job_runs", "Runs of each maintenance job.", labels=["job"]),
            "failures": CounterMetricFamily(
                "crow_job_failures", "Runs of each maintenance job that failed.", labels=["job"]
            ),
            "success": GaugeMetricFamily(
                "crow_job_last_success_timestamp_seconds",
                "When each maintenance job last ended without a failure (Unix time).",
                labels=["job"],
            ),
            "finished": GaugeMetricFamily(
                "crow_job_last_run_timestamp_seconds",
                "When each maintenance job last ended, successful or not (Unix time).",
                labels=["job"],
            ),
            "freed": GaugeMetricFamily(
                "crow_job_last_run_freed_bytes",
                "Bytes of blob storage the last run of each maintenance job freed (gc).",
                labels=["job"],
            ),
        }
        for run in runs:
            families["runs"].add_metric([run.job], run.runs)
            families["failures"].add_metric([run.job], run.failures)
            if run.last_success is not None:
                families["success"].add_metric([run.job], run.last_success.timestamp())
            if run.last_finished is not None:
                families["finished"].add_metric([run.job], run.last_finished.timestamp())
            families["freed"].add_metric([run.job], run.last_freed_bytes)
        yield from families.values()
