"""Request bodies read as a stream of bounded chunks, never whole.

A body comes with a ``Content-Length`` or, for the streamed PATCH that
``docker push`` sends, with ``Transfer-Encoding: chunked`` and no length
(gunicorn decodes the chunking; Django alone would see an empty body).
A body that ends before its declared length means the client went away: it
raises ``IncompleteBody`` (``SIZE_INVALID``) so that nothing of it is
committed. A body that stops arriving (the server raises the builtin
``TimeoutError`` from its input stream when no byte came for its body
timeout) raises ``errors.Stalled`` (408): an upload keeps what arrived
(``registry.uploads``). Domain code gets ``chunks()`` and ``expected``, never the body.

The request holds no database connection while it waits for the client's
bytes (``registry.db.connections``): with thousands of slow uploads in flight,
a pool of a few connections still serves every other request.
"""

from collections.abc import Iterator

from django.http import HttpRequest

from registry import errors
from registry.db import connections
from registry.errors import RegistryError, Stalled


class IncompleteBody(RegistryError):
    """The body broke off: what the client sent is refused whole, wherever it was going."""

    def __init__(self, message: str) -> None:
        super().__init__(errors.SIZE_INVALID, message)


class Body:
    def __init__(self, request: HttpRequest, buffer_size: int) -> None:
        self.length = _declared_length(request)
        self.chunked = (
            self.length is None and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        )
        self._request = request
        self._buffer_size = buffer_size
        self.received = 0

    @property
    def empty(self) -> bool:
        return self.length == 0 or (self.length is None and not self.chunked)

    @property
    def expected(self) -> int | None:
        """The length domain code is told: 0 for no body at all, None for a stream of unknown length."""
        return 0 if self.empty else self.length

    def chunks(self) -> Iterator[bytes]:
        if self.empty:
            return
        stream = self._request.META["wsgi.input"]
        read = getattr(stream, "read1", stream.read)  # read1: what arrived, without waiting for all of it
        while self.length is None or self.received < self.length:
            want = (
                self._buffer_size
                if self.length is None
                else min(self._buffer_size, self.length - self.received)
            )
            connections.release()
            try:
                chunk = read(want)
            except Exception as exc:  # OSError, or gunicorn's own errors when a chunked body is cut
                if _timed_out(exc):
                    raise Stalled(self.received) from exc
                raise IncompleteBody(f"body broke off after {self.received} bytes: {exc}") from exc
            if not chunk:
                break
            self.received += len(chunk)
            yield chunk
        if self.length is not None and self.received < self.length:
            raise IncompleteBody(f"body ended after {self.received} of {self.length} declared bytes")

    def read_all(self, limit: int) -> bytes:
        """The whole body, for small documents (manifests); at most ``limit + 1`` bytes are read."""
        data = bytearray()
        for chunk in self.chunks():
            data += chunk
            if len(data) > limit:
                break
        return bytes(data)


def _timed_out(exc: BaseException) -> bool:
    """The stream's ``TimeoutError``, raised as is or wrapped by Django (``UnreadablePostError``)."""
    return isinstance(exc, TimeoutError) or isinstance(exc.__cause__, TimeoutError)


def _declared_length(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH")
    if raw in (None, ""):
        return None
    try:
        length = int(raw)
    except ValueError:
        return None
    return max(length, 0)
