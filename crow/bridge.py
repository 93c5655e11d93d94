"""CRoW's ASGI-to-WSGI bridge: Django's WSGI application in threads, under granian's event loop.

Each request that the fast path leaves runs ``crow.wsgi.application`` in a
thread of a ``ThreadPoolExecutor``, made as requests need them: a request with
a body (an upload chunk, a manifest, a form) in one of ``CROW_BODY_THREADS``
per worker, any other in one of ``CROW_THREADS``. A request that streams a body
holds its thread while the client sends it, one byte a second if the client
wants (it holds no database connection meanwhile: ``registry.bodies``), so
those threads are many and apart: a thread waiting for bytes is memory (about
20 KiB of stack), and a thousand slow uploads leave the other requests' threads
free. The thread and the loop meet in three places, each with
backpressure, so that a request never holds more than a piece of its body or
its answer in memory:

- ``wsgi.input`` (``Input``) has file semantics (``read(n)`` returns ``n``
  bytes unless the body ends) and ``read1(n)`` (what arrived, up to ``n``:
  ``registry.bodies`` streams uploads with it). It is fed by ``receive()`` on
  the loop only when the thread asks for more, and then gathers as many
  messages as a read wants in one hop: a hop per message (granian hands a
  chunked body over in pieces of a few KiB) made the thread and the loop
  trade places tens of times per MiB. A read returns what came within a
  second, so a slow upload still moves. No byte for ``CROW_BODY_TIMEOUT``
  seconds makes a read raise the builtin ``TimeoutError``; a client that went
  away (``http.disconnect``) makes it raise ``ConnectionResetError``.
- The answer: the thread waits until each piece is handed to granian. An answer
  of one piece (every error, every manifest) goes back with the thread's
  result, without a hop of its own.
- ``wsgi.file_wrapper``: a whole real file (Django's ``FileResponse`` of a blob)
  is sent as ``http.response.pathsend``: granian reads it in Rust, no byte
  goes through Python. A part of a file (a Range) is read and sent in pieces.

The environ is the one gunicorn gave: ``RAW_URI``/``REQUEST_URI`` from the raw
path (``registry.endpoint`` refuses a ``%2F`` it finds there), ``PATH_INFO``
percent-decoded to bytes as latin-1, ``HTTP_TRANSFER_ENCODING`` for a chunked
body (``registry.bodies`` then streams it from ``wsgi.input``; granian decodes
the chunks).

What the application left of a body is read on the loop, not in a thread,
before the answer goes out (``crow.earlyanswers`` says why and how far).

Why not a2wsgi, which this replaces: its body reads wait for ``receive()`` with
no bound (a client that stops sending holds a thread forever), it has no
``wsgi.file_wrapper`` (a blob download went through Python 64 KiB at a time),
and its answer queue lets the thread run ahead of the client by several pieces.
"""

import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

from crow import earlyanswers

Message = dict[str, Any]


GATHER_WINDOW = 1.0  # seconds: a read returns what came by then, so a slow upload still moves


class Input:
    """``wsgi.input``: the request's body, gathered on the loop a read at a time."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, receive: Callable, timeout: float, length: int | None = None
    ) -> None:
        self._loop = loop
        self._receive = receive
        self._timeout = timeout
        self._left = length  # bytes of a declared Content-Length still to come (None: chunked)
        self._buffer = bytearray()
        self._receiving: asyncio.Future | None = None  # a receive() a gather stopped waiting for: next
        self._ahead: asyncio.Task | None = None  # the read ahead of the thread's first read (``read_ahead``)
        self.ended = False  # the last message arrived: nothing more to read
        self.failed: BaseException | None = None  # a timeout or a disconnect: the body is lost

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes (all, if negative) unless the body ends first. If it stalls or breaks off,
        what arrived is returned first (a short read) and the next read raises: a stalled upload
        keeps every byte that reached the server."""
        whole = size is None or size < 0
        self._settle()
        try:
            while (whole or len(self._buffer) < size) and self._more(
                _WHOLE if whole else size - len(self._buffer)
            ):
                pass
        except (TimeoutError, ConnectionResetError):
            if not self._buffer:
                raise
        return self._take(len(self._buffer) if whole else size)

    def read1(self, size: int) -> bytes:
        """Up to ``size`` bytes, as soon as some arrived (all that came within ``GATHER_WINDOW`` of
        the first); b"" at the end of the body. Raises as ``read`` does, once nothing is left."""
        self._settle()
        if not self._buffer:
            data = self._gather(size)
            if len(data) <= size:
                return data  # the common case: no copy
            self._buffer += data
        return self._take(size)

    def readline(self, limit: int = -1) -> bytes:
        self._settle()
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                size = end + 1
                break
            if 0 <= limit <= len(self._buffer) or not self._more(_WHOLE):
                size = len(self._buffer)
                break
        if 0 <= limit < size:
            size = limit
        return self._take(size)

    def __iter__(self):
        while line := self.readline():
            yield line

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _more(self, want: int) -> bool:
        """Append up to ``want`` more bytes of the body to the buffer; False once it ended."""
        data = self._gather(want)
        self._buffer += data
        return bool(data) or not self.ended

    def _settle(self) -> None:
        """From the thread, before its first look at the buffer: one hop to let the read-ahead end."""
        if self._ahead is not None:
            asyncio.run_coroutine_threadsafe(self._join_ahead(), self._loop).result()

    async def _join_ahead(self) -> None:
        """On the loop: wait for the read-ahead to end (cancelled with it if this wait is)."""
        ahead = self._ahead
        if ahead is None:
            return
        try:
            await asyncio.wait((ahead,))
        finally:
            ahead.cancel()  # if not done: this wait was cancelled (a drain's bound)
            self._ahead = None

    def _gather(self, want: int) -> bytes:
        """From the thread: one hop to the loop for up to ``want`` bytes; b"" once the body ended."""
        if self.failed is not None:
            raise self.failed
        if self.ended:
            return b""
        return asyncio.run_coroutine_threadsafe(self.gather(want), self._loop).result()

    async def gather(self, want: int) -> bytes:
        """On the loop: the body's next bytes, as many messages as arrive until ``want`` bytes, the
        end of the body, or ``GATHER_WINDOW`` after the call (once some came). Raises ``TimeoutError``
        if no byte came for the body timeout, ``ConnectionResetError`` if the client went away: each
        a hop back to the thread per message would cost far more than the messages themselves."""
        pieces: list[bytes] = []
        got = 0
        now = self._loop.time()
        window_ends, stall_ends = now + GATHER_WINDOW, now + self._timeout
        while got < want and not self.ended:
            try:
                wait = (window_ends if got else stall_ends) - self._loop.time()
                message = await self._message(max(0.0, wait))
            except ConnectionResetError:
                if not got:
                    raise
                break  # what came before is read first; the next read raises
            if message is None:
                if got:
                    break
                self.failed = TimeoutError(f"no byte of the request body for {self._timeout:g} s")
                self.close()  # a receive left waiting would hold back the answer (granian)
                raise self.failed
            if body := message.get("body", b""):
                pieces.append(body)
                got += len(body)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def next_piece(self) -> bytes:
        """On the loop: the next bytes of the body (b"" at its end); raises as ``read`` does."""
        await self._join_ahead()
        if self._buffer:
            return self._take(len(self._buffer))
        return b"" if self.ended else await self.gather(1)

    async def _message(self, wait: float) -> Message | None:
        """The next ``http.request`` message, or None if none came within ``wait`` seconds (the
        receive is kept, never cancelled: its message, when it comes, is the next one)."""
        receiving = self._receiving = self._receiving or asyncio.ensure_future(self._receive())
        if not receiving.done():  # kept in _receiving meanwhile: a gather cancelled here loses nothing
            done, _ = await asyncio.wait((receiving,), timeout=wait)
            if not done:
                return None
        self._receiving = None
        message = receiving.result()
        if message["type"] != "http.request":  # http.disconnect
            self.failed = ConnectionResetError("the client went away before the end of its request body")
            raise self.failed
        if self._left is not None:
            self._left -= len(message.get("body", b""))
        # The declared length has arrived: the body is whole (granian's closing empty message, which
        # can come a few milliseconds later, is not waited for).
        if not message.get("more_body", False) or (self._left is not None and self._left <= 0):
            self.ended = True
        return message

    async def prefetch(self, length: int) -> None:
        """On the loop, before the application runs: the first ``length`` bytes, if they come within
        ``GATHER_WINDOW``; a failure is kept for the application's first read to raise."""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            self._buffer += await self.gather(length)

    def read_ahead(self, length: int) -> None:
        """On the loop: start reading up to ``length`` bytes (as ``prefetch``) while the thread starts
        and does what comes before its first read (an upload's claim is a database round trip), so
        the body's first bytes are waiting when it gets there; that read waits for this one to end."""
        self._ahead = self._loop.create_task(self.prefetch(length))

    def close(self) -> None:
        """On the loop, once the request is over: drop a read-ahead and a receive still waiting."""
        if self._ahead is not None:
            self._ahead.cancel()
            self._ahead = None
        if self._receiving is not None:
            self._receiving.cancel()
            self._receiving = None


_WHOLE = 1 << 62  # a gather's ``want`` when the reader wants everything
PREFETCH = 64 * 1024  # a body up to this long (a manifest, a config) is read before the thread starts
READ_AHEAD = 256 * 1024  # of a longer body, read while the thread starts (``Input.read_ahead``)


class FileWrapper:
    """``wsgi.file_wrapper``: a file the bridge may send by path, else read in blocks."""

    def __init__(self, filelike: Any, block_size: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self):
        while data := self.filelike.read(self.block_size):
            yield data

    def close(self) -> None:
        if hasattr(self.filelike, "close"):
            self.filelike.close()

    def whole_file(self, length: int | None) -> str | None:
        """The path of the file, if the answer is that whole regular file (``length`` bytes from 0)."""
        try:
            fd = self.filelike.fileno()
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode) or status.st_size != length or os.lseek(fd, 0, os.SEEK_CUR):
                return None
            path = os.readlink(f"/proc/self/fd/{fd}")
            named = os.stat(path)
        except (AttributeError, OSError, ValueError):
            return None
        # The name still leads to the open file (not renamed, deleted or replaced since it was opened).
        return path if (named.st_dev, named.st_ino) == (status.st_dev, status.st_ino) else None


def environ(scope: dict, body: Input | None) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP ``scope``, as gunicorn built it."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    request_uri = (raw_path + b"?" + query if query else raw_path).decode("latin-1")
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    result: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path.decode("latin-1")).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": request_uri,
        "REQUEST_URI": request_uri,
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            name = "HTTP_" + name
        value = raw_value.decode("latin-1")
        result[name] = f"{result[name]},{value}" if name in result else value
    return result


class _Exchange:
    """One request: the thread's side of the answer, and what it hands back to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable) -> None:
        self._loop = loop
        self._send = send
        self.start: Message | None = None  # http.response.start, until it is sent
        self.sent = False  # something went out from the thread already

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.start = {
            "type": "http.response.start",
            "status": int(status.split(" ", 1)[0]),
            "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        }
        return self._write

    def _write(self, data: bytes) -> None:
        if data:
            self.send([{"type": "http.response.body", "body": data, "more_body": True}])

    def send(self, messages: list[Message]) -> None:
        """From the thread: send ``messages`` (after the answer's start) and wait until they are taken."""
        if not self.sent:
            messages = [self.start, *messages]
            self.sent = True
        asyncio.run_coroutine_threadsafe(self.send_all(messages), self._loop).result()

    async def send_all(self, messages: list[Message]) -> None:
        for message in messages:
            await self._send(message)

    def run(self, application: Callable, environ: dict) -> list[Message]:
        """In the thread: the application's answer; what is left to send, on the loop, is returned."""
        result = application(environ, self.start_response)
        try:
            if isinstance(result, FileWrapper):
                path = result.whole_file(_content_length(self.start))
                if path is not None:
                    return self._last([{"type": "http.response.pathsend", "path": path}])
            pending: bytes | None = None
            for data in result:
                if not data:
                    continue
                if pending is not None:
                    self.send([{"type": "http.response.body", "body": pending, "more_body": True}])
                pending = data
            return self._last([{"type": "http.response.body", "body": pending or b"", "more_body": False}])
        finally:
            if hasattr(result, "close"):
                result.close()

    def _last(self, messages: list[Message]) -> list[Message]:
        if not self.sent:
            self.sent = True
            return [self.start, *messages]
        return messages


def _content_length(start: Message | None) -> int | None:
    for name, value in (start or {}).get("headers", ()):
        if name == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


class Bridge:
    """An ASGI application that runs the WSGI ``application`` in ``threads`` threads, and requests
    with a body in ``body_threads`` others."""

    def __init__(self, application: Callable, threads: int, body_threads: int, body_timeout: float) -> None:
        self.application = application
        self.body_timeout = body_timeout
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="crow-wsgi")
        self.body_executor = ThreadPoolExecutor(max_workers=body_threads, thread_name_prefix="crow-body")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        loop = asyncio.get_running_loop()
        request = environ(scope, None)
        length = _declared_length(request)
        body = request["wsgi.input"] = Input(loop, receive, self.body_timeout, length)
        exchange = _Exchange(loop, send)
        executor = self.body_executor if _has_body(request) else self.executor
        try:
            if length is not None and 0 < length <= PREFETCH:
                await body.prefetch(length)
            elif _has_body(request):
                body.read_ahead(READ_AHEAD)
            messages = await loop.run_in_executor(executor, exchange.run, self.application, request)
            if not body.ended and _has_body(request):
                await earlyanswers.answer_then_drain(body, messages, send)
            else:
                await exchange.send_all(messages)
        finally:
            body.close()


def _declared_length(environ: dict) -> int | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


def _has_body(environ: dict) -> bool:
    length = environ.get("CONTENT_LENGTH") or "0"
    return length != "0" or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
