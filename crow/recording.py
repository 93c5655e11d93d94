"""Every HTTP request measured once, where it enters (``crow.asgi``): metrics, request id, access log.

``record(app, scope, receive, send)`` runs ``app`` with a ``Record``
(``registry.requestlog``) and, once the answer's last byte is handed to
granian, adds the request to the metrics (``registry.metrics``) and writes its
access-log line (logger ``crow.access``, one line per request; JSON with
``CROW_LOG_FORMAT=json``). The same point serves the fast path and Django:

- the request id is the client's ``X-Request-ID`` if sane (1 to 128 of
  ``[A-Za-z0-9._:-]``; not one already in flight in this process), else a new
  one; it is echoed in the answer's ``X-Request-ID`` and set for every log line
  written while the request is served (``requestlog.request_id``);
- the fast path names the request itself (``answered``); a request for Django
  carries its id in its ``X-Request-ID`` header (``for_django``) and finds its
  record in ``requestlog.live`` by it (``crow.wsgi``);
- the client address is ``crow.proxies.client_address``, the one the audit log
  and login throttling use: the connection's, or, when the connection comes
  from one of ``CROW_TRUSTED_PROXIES``, the last address of ``X-Forwarded-For``
  (or ``CROW_CLIENT_ADDRESS_HEADER``) not itself a trusted proxy;
- ``/healthz`` and ``/readyz`` are left out of the access log unless
  ``CROW_ACCESS_LOG_PROBES`` (probes every few seconds drown the log).

What a request costs here: two clock reads, the wrapped ``receive`` and
``send``, and a few dictionary increments (``metrics.RequestTally``, written to
the multiprocess files once a second and before a scrape); ``bench/README.md``
has the numbers with and without.
"""

import asyncio
import itertools
import logging
import os
import re
import time

from django.conf import settings

from crow import proxies
from registry import metrics, requestlog
from registry.requestlog import Record

log = logging.getLogger("crow.access")

_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_prefix = os.urandom(4).hex()  # new in each worker (forked from a parent that imported this)
_counter = itertools.count(1)


def _new_process() -> None:
    global _prefix, _counter
    _prefix, _counter = os.urandom(4).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_new_process)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROBES = frozenset({"/healthz", "/readyz"})
# Routes outside /v2/, by their first path segment: bounded, whatever the path.
_SITE_ROUTES = {
    "token": "token",
    "admin": "admin",
    "api": "api",
    "static": "static",
    "metrics": "metrics",
    "healthz": "healthz",
    "readyz": "readyz",
}
# Fast-path answers (kind, HEAD) -> operation.
_FAST = {
    ("m", False): "manifest_get",
    ("m", True): "manifest_head",
    ("b", False): "blob_get",
    ("b", True): "blob_head",
}


async def record(app, scope: dict, receive, send) -> None:
    started = time.perf_counter()
    request = _start(scope)
    scope["crow.record"] = request
    token = requestlog.request_id.set(request.request_id)
    echoed = (b"x-request-id", request.request_id.encode("ascii"))

    async def counted_receive() -> dict:
        message = await receive()
        request.received += len(message.get("body", b""))
        return message

    answer_headers: list = []

    async def counted_send(message: dict) -> None:
        nonlocal answer_headers
        kind = message["type"]
        if kind == "http.response.body":
            request.sent += len(message.get("body", b""))
        elif kind == "http.response.start":
            request.status = message["status"]
            answer_headers = message["headers"]
            message = {**message, "headers": [*answer_headers, echoed]}
        elif kind == "http.response.pathsend":
            request.sent_by_path += _content_length(answer_headers)
        await send(message)

    try:
        await app(scope, counted_receive, counted_send)
    except asyncio.CancelledError:  # the client went away before its answer
        request.status = request.status or 499
        raise
    except BaseException:  # granian answers 500
        request.status = request.status or 500
        raise
    finally:
        if scope.get("crow.django"):
            requestlog.live.pop(request.request_id, None)
        requestlog.request_id.reset(token)
        finish(request, time.perf_counter() - started)


def answered(scope: dict, kind: str, head: bool, name: str, reference: str, user: str) -> None:
    """The fast path answered: name its request (``kind`` "m" for a manifest, "b" for a blob)."""
    request = scope.get("crow.record")
    if request is not None:
        request.operation = _FAST[kind, head]
        request.repository = name
        request.reference = reference
        request.user = user


def for_django(scope: dict) -> dict:
    """``scope`` with its ``X-Request-ID`` header set to the request's id, its record listed by it."""
    request = scope.get("crow.record")
    if request is None:
        return scope
    requestlog.live[request.request_id] = request
    scope["crow.django"] = True  # record() takes it off the list
    value = request.request_id.encode("ascii")
    headers = [(name, v) for name, v in scope["headers"] if name != b"x-request-id"]
    headers.append((b"x-request-id", value))
    return {**scope, "headers": headers}


_access_log = _access_log_probes = False
_address_header = b"x-forwarded-for"


def configure() -> None:
    """Read the access log's settings once (not through Django's settings object per request)."""
    global _access_log, _access_log_probes, _address_header
    _access_log, _access_log_probes = settings.CROW_ACCESS_LOG, settings.CROW_ACCESS_LOG_PROBES
    _address_header = proxies.address_header().lower().encode("latin-1")


configure()
tally = metrics.RequestTally()  # this worker's request metrics, written out every FLUSH_INTERVAL
FLUSH_INTERVAL = 1.0  # seconds
_flushing: asyncio.TimerHandle | None = None


def finish(request: Record, duration: float) -> None:
    tally.add(
        request.operation,
        request.method,
        request.status,
        duration,
        request.received,
        request.sent,
        request.sent_by_path,
    )
    if _access_log and (_access_log_probes or request.path not in PROBES):
        _log(request, duration)


def start() -> None:
    """Lifespan start: write the tally out every second, on this loop."""
    global _flushing
    loop = asyncio.get_running_loop()

    def flush_and_again() -> None:
        global _flushing
        tally.flush()
        _flushing = loop.call_later(FLUSH_INTERVAL, flush_and_again)

    _flushing = loop.call_later(FLUSH_INTERVAL, flush_and_again)


def stop() -> None:
    """Lifespan end: write out what is left."""
    global _flushing
    if _flushing is not None:
        _flushing.cancel()
        _flushing = None
    tally.flush()


def _log(request: Record, duration: float) -> None:
    fields = {
        "request_id": request.request_id,
        "method": request.method,
        "path": request.path,
        "route": request.operation,
        "repository": request.repository,
        "reference": request.reference,
        "user": request.user,
        "status": request.status,
        "bytes_in": request.received,
        "bytes_out": request.sent + request.sent_by_path,
        "duration": round(duration, 6),
        "client": request.client,
    }
    log.info(
        '%s "%s %s" %s %s %s %.4fs %s',
        request.client,
        request.method,
        request.path,
        request.status,
        request.received,
        request.sent + request.sent_by_path,
        duration,
        request.user or "-",
        extra={"access": fields},
    )


def _start(scope: dict) -> Record:
    method = scope["method"]
    path = scope["path"]
    forwarded = None
    wanted = None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            wanted = value
        elif name == _address_header:
            forwarded = value if forwarded is None else forwarded + b"," + value
    if wanted is not None and _SANE_ID.fullmatch(wanted) and wanted.decode() not in requestlog.live:
        request_id = wanted.decode()
    else:
        request_id = f"{_prefix}-{next(_counter):x}"
    client = scope.get("client")
    peer = client[0] if client else ""
    return Record(
        request_id,
        method if method in _METHODS else "other",
        path,
        proxies.client_address(peer, forwarded.decode("latin-1")) if forwarded is not None else peer,
        _route(path),
    )


def _route(path: str) -> str:
    """The route a request has until the application names it (Django's /v2/ routes do)."""
    if path.startswith("/v2/"):
        return "v2"
    return _SITE_ROUTES.get(path[1:].partition("/")[0], "other")


def _content_length(headers) -> int:
    for name, value in headers or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
