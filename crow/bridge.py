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
  bytes unless the body ends) and is fed by ``await receive()`` on the loop,
  one message at a time and only when the thread asks for more. A receive
  that brings no byte for ``CROW_BODY_TIMEOUT`` seconds makes ``read`` raise
  the builtin ``TimeoutError``; a client that went away (``http.disconnect``)
  makes it raise ``ConnectionResetError``.
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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

from crow import earlyanswers

Message = dict[str, Any]


class Input:
    """``wsgi.input``: the request's body, pulled from the loop one message at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Callable, timeout: float) -> None:
        self._loop = loop
        self._receive = receive
        self._timeout = timeout
        self._buffer = bytearray()
        self.ended = False  # the last message arrived: nothing more to read
        self.failed: BaseException | None = None  # a timeout or a disconnect: the body is lost

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes (all, if negative) unless the body ends first. If it stalls or breaks off,
        what arrived is returned first (a short read) and the next read raises: a stalled upload
        keeps every byte that reached the server."""
        whole = size is None or size < 0
        try:
            while (whole or len(self._buffer) < size) and self._more():
                pass
        except (TimeoutError, ConnectionResetError):
            if not self._buffer:
                raise
        if whole:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                size = end + 1
                break
            if 0 <= limit <= len(self._buffer) or not self._more():
                size = len(self._buffer)
                break
        if 0 <= limit < size:
            size = limit
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def __iter__(self):
        while line := self.readline():
            yield line

    def _more(self) -> bool:
        """Append the next non-empty piece of the body to the buffer; False once it ended."""
        if self.failed is not None:
            raise self.failed
        if self.ended:
            return False
        data = asyncio.run_coroutine_threadsafe(self.next_piece(), self._loop).result()
        self._buffer += data
        return bool(data) or not self.ended

    async def next_piece(self) -> bytes:
        """On the loop: the next bytes of the body (b"" at its end); raises as ``read`` does."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                async with asyncio.timeout_at(self._loop.time() + max(0.0, deadline - time.monotonic())):
                    message = await self._receive()
            except TimeoutError:
                self.failed = TimeoutError(f"no byte of the request body for {self._timeout:g} s")
                raise self.failed from None
            if message["type"] != "http.request":  # http.disconnect
                self.failed = ConnectionResetError("the client went away before the end of its request body")
                raise self.failed
            if not message.get("more_body", False):
                self.ended = True
            body = message.get("body", b"")
            if body or self.ended:
                return body


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


def environ(scope: dict, body: Input) -> dict[str, Any]:
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
        body = Input(loop, receive, self.body_timeout)
        exchange = _Exchange(loop, send)
        request = environ(scope, body)
        executor = self.body_executor if _has_body(request) else self.executor
        messages = await loop.run_in_executor(executor, exchange.run, self.application, request)
        if not body.ended and _has_body(request):
            await earlyanswers.answer_then_drain(body, messages, send)
        else:
            await exchange.send_all(messages)


def _has_body(environ: dict) -> bool:
    length = environ.get("CONTENT_LENGTH") or "0"
    return length != "0" or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
