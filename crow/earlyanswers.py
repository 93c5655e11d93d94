"""An answer given before the request's body was read must reach the client.

The registry answers some requests without reading their body: a manifest
over the size limit (413), credentials refused on a PUT or PATCH (401/403), a
PATCH to an unknown upload (404), a chunk refused (416). Many clients
(Python's ``http.client`` and ``urllib``, anything without
``Expect: 100-continue``) send the whole body before they read the answer.
gunicorn discards at most 64 KiB of an unread body and then closes the
socket: with the client's bytes still arriving, the kernel resets the
connection, and the client sees a broken pipe instead of the answer.

So, once the application has answered, the rest of the body is read and
discarded, up to ``DRAIN_LIMIT`` bytes within ``DRAIN_TIMEOUT``: the client
finishes sending, reads the answer, and keeps its connection. Past either
bound the answer goes out with ``Connection: close``, and after it the
connection lingers: the write side is shut (the client sees the end of the
answer), what still arrives is discarded for at most ``LINGER`` seconds, and
only then is the socket closed, with nothing unread left to cause a reset.

gunicorn drops a ``Connection`` header set by the application (hop-by-hop);
it writes ``Connection: close`` when its request says so
(``Request.should_close``), so the ``pre_request`` hook of
``crow/gunicorn.conf.py`` hands each request to ``serving`` for this module to
mark. Under another server, the answer lingers without the header.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

DRAIN_LIMIT = 8 * 1024 * 1024  # bytes of an unread body discarded to keep the connection
DRAIN_TIMEOUT = 5.0  # seconds, for those bytes to arrive
LINGER = 5.0  # seconds a closing connection keeps discarding what the client still sends
_STEP = 64 * 1024

_current = threading.local()  # gunicorn's request object for the thread's current request


def serving(request: Any) -> None:
    """gunicorn's ``pre_request`` hook: the request being served on this thread."""
    _current.request = request


class ReadWholeBody:
    """WSGI middleware: discard what the application left of a body, or close cleanly."""

    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        result = self.application(environ, start_response)
        if not _has_body(environ) or _drain(environ, DRAIN_LIMIT, time.monotonic() + DRAIN_TIMEOUT):
            return result
        request = getattr(_current, "request", None)
        if request is not None:
            request.must_close = True  # gunicorn then answers "Connection: close" and closes after
        return _Lingering(result, environ)


class _Lingering:
    """The application's answer; once it is sent, shut the write side and discard what arrives."""

    def __init__(self, result: Iterable[bytes], environ: dict) -> None:
        self._result = result
        self._environ = environ

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            if hasattr(self._result, "close"):
                self._result.close()
        finally:
            sock = self._environ.get("gunicorn.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
            _drain(self._environ, None, time.monotonic() + LINGER)


def _has_body(environ: dict) -> bool:
    length = environ.get("CONTENT_LENGTH") or "0"
    return length != "0" or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def _drain(environ: dict, limit: int | None, deadline: float) -> bool:
    """Read the body to its end, at most ``limit`` bytes (None: any) before ``deadline``: True if it ended."""
    body = environ["wsgi.input"]
    sock = environ.get("gunicorn.socket")
    prior = sock.gettimeout() if sock is not None else None
    drained = 0
    try:
        while limit is None or drained <= limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if sock is not None:
                sock.settimeout(remaining)
            chunk = body.read(_STEP)
            if not chunk:
                return True
            drained += len(chunk)
        return False
    except Exception:  # a timeout, a client gone, a malformed chunk: the connection cannot be reused
        return False
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(prior)
