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
  ``registry.bodies`` streams uploads with it). From the first read on, a task
  on the loop receives the body into a buffer, at most ``BUFFER_LIMIT`` (512
  KiB) ahead of the reads, while the thread hashes and writes what it took:
  the thread waits only for bytes that have not arrived, and the loop's cost of
  a message (granian hands a body over in pieces of up to 64 KiB) is one
  ``await``. Measured against the design before it (the loop received only
  while a read waited, each message through its own timed wait): skopeo pushes
  a 40-layer image 5-6 % faster, a 3-layer one 1-3 % (``bench/README.md``).
  A streaming read returns what came within a second of the first bytes, so a
  slow upload still moves. No byte for ``CROW_BODY_TIMEOUT`` seconds makes a
  read raise the builtin ``TimeoutError``; a client that went away
  (``http.disconnect``) makes it raise ``ConnectionResetError``; either only
  once the bytes that arrived before it are read.
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
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

from crow import earlyanswers

Message = dict[str, Any]


GATHER_WINDOW = 1.0  # seconds: a read returns what came by then, so a slow upload still moves
BUFFER_LIMIT = 512 * 1024  # bytes of a body received ahead of the thread's reads (and one message)
SETTLE = 256 * 1024  # a streaming read waits for this much (or the window, or the end) before it returns
STOP_WAIT = 5.0  # seconds a stopped pump's cancelled receive has to end before the answer goes anyway


class Input:
    """``wsgi.input``: the request's body, received on the loop ahead of the thread's reads.

    A pump (a task on the loop, started by the first read or by ``prefetch``) awaits granian's
    messages one after another and appends their bytes to a buffer, at most ``BUFFER_LIMIT``
    ahead of the reads; the thread takes from that buffer under a lock, and waits on its
    condition only when what it wants has not arrived. So the loop's cost of a message is one
    ``await receive()``, the thread hashes and writes one piece while the next arrives, and
    neither side hops to the other for each piece: only a thread that waits is woken, and only
    a pump that waits for room is.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, receive: Callable, timeout: float, length: int | None = None
    ) -> None:
        self._loop = loop
        self._receive = receive
        self._timeout = timeout
        self._left = length  # bytes of a declared Content-Length still to come (None: chunked); the pump's
        self._pieces: deque[bytes] = deque()
        self._buffered = 0  # bytes in _pieces
        self._last_arrival = 0.0  # time.monotonic() of the last bytes received
        self._arrived = threading.Condition()  # guards the buffer, ended, failed and the waits below
        self._wanted = 0  # a waiting thread's bytes: the pump wakes it once that many are buffered
        self._loop_waiter: asyncio.Future | None = None  # a wait on the loop (prefetch, drain)
        self._room: asyncio.Future | None = None  # the pump's wait while the buffer is full
        self._pump: asyncio.Task | None = None
        self.ended = False  # the last message arrived: nothing more to receive
        self.failed: BaseException | None = None  # a timeout or a disconnect: the body is lost

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes (all, if negative) unless the body ends first. If it stalls or breaks off,
        what arrived is returned first (a short read) and the next read raises: a stalled upload
        keeps every byte that reached the server."""
        want = _WHOLE if size is None or size < 0 else size
        parts: list[bytes] = []
        got = 0
        while got < want:
            try:
                self._wait(min(want - got, BUFFER_LIMIT), window=False)
            except (TimeoutError, ConnectionResetError):
                if got:
                    break  # what arrived is read first; the next read raises
                raise
            data = self._take(want - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read1(self, size: int) -> bytes:
        """Up to ``size`` bytes, as soon as some arrived (what came within ``GATHER_WINDOW`` of the
        first, up to ``SETTLE``); b"" at the end of the body. Raises as ``read`` does, once nothing
        is left."""
        self._wait(min(size, SETTLE), window=True)
        return self._take(size)

    def readline(self, limit: int = -1) -> bytes:
        line = bytearray()
        while limit < 0 or len(line) < limit:
            self._wait(1, window=False)
            with self._arrived:
                if not self._pieces:
                    break
                piece = self._pieces[0]
                end = piece.find(b"\n")
                size = len(piece) if end < 0 else end + 1
                if limit >= 0:
                    size = min(size, limit - len(line))
                line += self._take_locked(size)
                if end >= 0 and end < size:
                    break
        return bytes(line)

    def __iter__(self):
        while line := self.readline():
            yield line

    def _wait(self, want: int, window: bool) -> None:
        """From the thread: until ``want`` bytes are buffered, the body ended or failed, or (with
        ``window``) ``GATHER_WINDOW`` passed since some arrived. No byte for the body timeout is a
        stall: ``TimeoutError``, raised (as a failure is) once nothing buffered is left."""
        with self._arrived:
            if self._buffered >= want or self.ended or self.failed is not None:
                return self._raise_if_empty()
            if self._pump is None:
                self._loop.call_soon_threadsafe(self._start)
            started = time.monotonic()
            window_ends: float | None = None
            stalled = False
            self._wanted = want
            try:
                while self._buffered < want and not self.ended and self.failed is None:
                    now = time.monotonic()
                    if window and self._buffered:
                        window_ends = window_ends or now + GATHER_WINDOW
                        if now >= window_ends:
                            break
                    stall_ends = max(started, self._last_arrival) + self._timeout
                    if now >= stall_ends:
                        self.failed = TimeoutError(f"no byte of the request body for {self._timeout:g} s")
                        stalled = True
                        break
                    self._arrived.wait(min(stall_ends, window_ends or stall_ends) - now)
            finally:
                self._wanted = 0
        if stalled:
            # The receive left waiting goes before the thread answers: granian holds back an answer
            # (and the connection) while one is pending.
            asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result()
        with self._arrived:
            return self._raise_if_empty()

    def _raise_if_empty(self) -> None:
        if not self._buffered and self.failed is not None:
            raise self.failed

    def _take(self, size: int) -> bytes:
        with self._arrived:
            return self._take_locked(size)

    def _take_locked(self, size: int) -> bytes:
        """Up to ``size`` bytes from the front of the buffer (one piece as is when it fits: no copy)."""
        if len(self._pieces) == 1 and len(self._pieces[0]) <= size:
            data = self._pieces.popleft()
        else:
            parts, got = [], 0
            while self._pieces and got < size:
                piece = self._pieces.popleft()
                if got + len(piece) > size:
                    self._pieces.appendleft(piece[size - got :])
                    piece = piece[: size - got]
                parts.append(piece)
                got += len(piece)
            data = b"".join(parts)
        self._buffered -= len(data)
        if self._room is not None and self._buffered < BUFFER_LIMIT:
            room, self._room = self._room, None
            self._loop.call_soon_threadsafe(_resolve, room)
        return data

    def _start(self) -> None:
        """On the loop: start the pump, unless it runs or the request is over."""
        if self._pump is None and not self.ended and self.failed is None:
            self._pump = self._loop.create_task(self._run_pump())

    async def _run_pump(self) -> None:
        """On the loop: receive the body's messages into the buffer until it ends or fails."""
        while True:
            with self._arrived:
                if self._buffered >= BUFFER_LIMIT:
                    self._room = room = self._loop.create_future()
                else:
                    room = None
            if room is not None:
                await room
                continue
            try:
                message = await self._receive()
            except Exception as exc:  # the server's own way of saying the client is gone
                message = {"type": "http.disconnect", "error": exc}
            with self._arrived:
                if message["type"] != "http.request":  # http.disconnect
                    self.failed = ConnectionResetError("the client went away before the end of its body")
                else:
                    body = message.get("body", b"")
                    if body:
                        self._pieces.append(body)
                        self._buffered += len(body)
                        self._last_arrival = time.monotonic()
                    if self._left is not None:
                        self._left -= len(body)
                    # The declared length has arrived: the body is whole (granian's closing empty
                    # message, which can come a few milliseconds later, is not waited for).
                    if not message.get("more_body", False) or (self._left is not None and self._left <= 0):
                        self.ended = True
                done = self.ended or self.failed is not None
                # A waiting thread hears of the first bytes too: its window starts with them.
                if done or (self._wanted and (self._buffered >= self._wanted or self._buffered == len(body))):
                    self._arrived.notify()
                if self._loop_waiter is not None:
                    _resolve(self._loop_waiter)
                    self._loop_waiter = None
            if done:
                return

    async def _arrival(self, seconds: float | None) -> None:
        """On the loop: until the pump has received something more, or ``seconds`` passed."""
        self._start()
        if self.ended or self.failed is not None:
            return
        waiter = self._loop_waiter = self._loop.create_future()
        try:
            async with asyncio.timeout(seconds):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._loop_waiter = None

    async def next_piece(self) -> bytes:
        """On the loop: the next bytes of the body (b"" at its end); raises as ``read`` does."""
        while True:
            with self._arrived:
                if self._pieces:
                    return self._take_locked(self._buffered)
                if self.failed is not None:
                    raise self.failed
                if self.ended:
                    return b""
            await self._arrival(None)

    async def prefetch(self, length: int) -> None:
        """On the loop, before the application runs: the first ``length`` bytes, if they come within
        ``GATHER_WINDOW``; a failure is kept for the application's first read to raise."""
        deadline = self._loop.time() + GATHER_WINDOW
        while self._buffered < length and not self.ended and self.failed is None:
            left = deadline - self._loop.time()
            if left <= 0:
                return
            await self._arrival(left)

    def close(self) -> None:
        """On the loop, once the request is over: stop the pump (and a receive still waiting)."""
        if self._pump is not None:
            self._pump.cancel()
        self._pump = None

    async def stop(self) -> None:
        """On the loop: stop the pump and wait until it has (its receive cancelled), before an answer;
        at most ``STOP_WAIT``: a receive that will not end must not hold the thread waiting on it."""
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            await asyncio.wait((pump,), timeout=STOP_WAIT)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


_WHOLE = 1 << 62  # a read's ``want`` when the reader wants everything
PREFETCH = 64 * 1024  # a body up to this long (a manifest, a config) is read before the thread starts


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
