"""Every Prometheus metric CRoW exports, defined once (``README.md``, "Monitoring", lists them).

Under ``python -m crow.serve`` the values live in files that every worker
process writes (prometheus-client's multiprocess mode: ``crow.serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` before anything imports this module), so a scrape
answered by any worker counts the requests of all of them. Elsewhere (tests,
``manage.py``) they are plain in-process values.

Labels are bounded by construction: an operation is a route's name and a
method from a fixed table (never a path), a status is an HTTP status, a backend
and a storage operation come from the store's interface. What the fast path
counts per request is tallied in plain dictionaries on the event loop and
written to the metrics once a second (``RequestTally``).

gc and backup runs happen in other processes (``manage.py``): they are rows of
``registry.models.JobRun``, read at scrape time (``registry.views.monitoring``).
"""

from bisect import bisect_left
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

# Seconds: a cached manifest answer takes well under 5 ms, an upload chunk or a big manifest list more.
DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.5, 2.5, 10.0)

requests = Counter(
    "crow_http_requests",
    "HTTP requests answered, by operation (route and method), method and status.",
    ("operation", "method", "status"),
)
request_duration = Histogram(
    "crow_http_request_duration_seconds",
    "Time from a request's arrival to the last byte of its answer handed to the server, by operation.",
    ("operation",),
    buckets=DURATION_BUCKETS,
)
received_bytes = Counter(
    "crow_http_received_bytes",
    "Request body bytes received, by operation.",
    ("operation",),
)
served_bytes = Counter(
    "crow_served_bytes",
    "Bytes of answers and blob downloads: sent by the application (app), sent zero-copy by the server "
    "from a file (pathsend), or fetched by the client from the blob store it was redirected to (redirect).",
    ("via",),
)
uploads_in_progress = Gauge(
    "crow_uploads_in_progress",
    "Upload requests (blob upload start, chunk, finish) being served right now.",
    multiprocess_mode="livesum",
)
read_only = Gauge(
    "crow_read_only",
    "1 while the registry is read-only (CROW_READ_ONLY, or switched by an administrator), else 0.",
    multiprocess_mode="mostrecent",
)
storage_operations = Counter(
    "crow_storage_operations",
    "Calls to the blob store, by backend and operation.",
    ("backend", "operation"),
)
storage_errors = Counter(
    "crow_storage_errors",
    "Calls to the blob store that raised, by backend and operation.",
    ("backend", "operation"),
)
tokens_issued = Counter("crow_tokens_issued", "Registry tokens issued by the token service.")
failed_logins = Counter(
    "crow_failed_logins", "Logins refused: wrong credentials at the token service or in a Basic header."
)


class RequestTally:
    """The request metrics of one event loop, counted in plain dictionaries and written to the
    metrics (the multiprocess files) by ``flush``: ``crow.recording`` flushes every second and before
    it answers a scrape. A request costs dictionary increments (well under a microsecond) instead
    of five locked writes to memory-mapped files (about 1.5 µs each); a scrape answered by another
    worker sees this one's requests up to a second late. Not thread-safe: one loop owns it."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.durations: dict[str, list] = {}  # operation -> [sum, count per bucket...]
        self.received: dict[str, int] = {}
        self.served: dict[str, int] = {}

    def add(
        self,
        operation: str,
        method: str,
        status: int,
        duration: float,
        received: int,
        sent: int,
        by_path: int,
    ) -> None:
        """One request answered: ``received`` body bytes; ``sent`` by Python, ``by_path`` from a file."""
        key = (operation, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        observed = self.durations.get(operation)
        if observed is None:
            observed = self.durations[operation] = [0.0] * (len(DURATION_BUCKETS) + 2)
        observed[0] += duration
        observed[1 + bisect_left(DURATION_BUCKETS, duration)] += 1
        if received:
            self.received[operation] = self.received.get(operation, 0) + received
        if sent:
            self.served["app"] = self.served.get("app", 0) + sent
        if by_path:
            self.served["pathsend"] = self.served.get("pathsend", 0) + by_path

    def flush(self) -> None:
        requests_, durations, received, served = self.requests, self.durations, self.received, self.served
        self.requests, self.durations, self.received, self.served = {}, {}, {}, {}
        for (operation, method, status), count in requests_.items():
            requests.labels(operation, method, str(status)).inc(count)
        for operation, observed in durations.items():
            _observe_many(request_duration.labels(operation), observed[0], observed[1:])
        for operation, count in received.items():
            received_bytes.labels(operation).inc(count)
        for via, count in served.items():
            served_bytes.labels(via).inc(count)


def _observe_many(child, total: float, per_bucket: list) -> None:
    """What ``count`` calls of ``child.observe`` summing to ``total`` would do, bucket by bucket.
    prometheus-client has no public call for it: this writes the child's ``_sum`` and ``_buckets``
    exactly as ``Histogram.observe`` does (checked against it by tests/test_metrics.py)."""
    child._sum.inc(total)
    for bucket, count in zip(child._buckets, per_bucket, strict=True):
        if count:
            bucket.inc(count)


@cache
def bound_served(via: str):
    return served_bytes.labels(via)


@cache
def bound_storage(backend: str, operation: str):
    return storage_operations.labels(backend, operation), storage_errors.labels(backend, operation)


mirror_upstream_requests = Counter(
    "crow_mirror_upstream_requests",
    "Requests to upstream registries (registry.mirror), by upstream prefix, kind (manifest, "
    "manifest_head, blob, blob_head, token) and outcome (ok, not_found, refused, unavailable).",
    ("upstream", "kind", "outcome"),
)
mirror_stale_served = Counter(
    "crow_mirror_stale_served",
    "Mirrored tags served past their trust period because the upstream was down or rate-limiting.",
    ("upstream",),
)
mirror_blob_bytes = Counter(
    "crow_mirror_blob_bytes",
    "Blob bytes downloaded from upstream registries, by upstream prefix.",
    ("upstream",),
)
