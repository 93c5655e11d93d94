"""Every Prometheus metric CRoW exports, defined once (``README.md``, "Monitoring", lists them).

Under ``python -m crow.serve`` the values live in files that every worker
process writes (prometheus-client's multiprocess mode: ``crow.serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` before anything imports this module), so a scrape
answered by any worker counts the requests of all of them. Elsewhere (tests,
``manage.py``) they are plain in-process values.

Labels are bounded by construction: an operation is a route's name and a
method from a fixed table (never a path), a status is an HTTP status, a backend
and a storage operation come from the store's interface. What the fast path
increments is bound once per label set (``bound``): a labelled child is a
dictionary lookup, not a ``labels()`` call, per request.

gc and backup runs happen in other processes (``manage.py``): they are rows of
``registry.models.JobRun``, read at scrape time (``registry.views.monitoring``).
"""

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


@cache
def bound_request(operation: str, method: str, status: int):
    """The request counter's child for these labels (bound once per process)."""
    return requests.labels(operation, method, str(status))


@cache
def bound_duration(operation: str):
    return request_duration.labels(operation)


@cache
def bound_received(operation: str):
    return received_bytes.labels(operation)


@cache
def bound_served(via: str):
    return served_bytes.labels(via)


@cache
def bound_storage(backend: str, operation: str):
    return storage_operations.labels(backend, operation), storage_errors.labels(backend, operation)
