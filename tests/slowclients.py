"""Slow and idle clients that hold a server's connections, and a well-behaved client timed beside them.

Issue 17's mix, per 550 held connections: 200 that send nothing, 200 that
send a request line and one header line then a byte every few seconds, 100
uploads that send one byte a second (a POST for the session, then a PATCH
that declares a large ``Content-Length``), and 50 downloads of a multi-MiB
blob read 1 KiB a second through a small receive buffer. ``Crowd`` holds such
a mix open from one asyncio event loop; ``probe_manifests`` times manifest
GETs on fresh connections while it does. ``tests/test_slow_clients.py`` holds
a few hundred, ``bench/slow_clients.py`` thousands.

Everything speaks HTTP/1.1 over raw asyncio streams, since ``requests`` sends
a request whole or not at all. Every wait is bounded, so a server that never
answers makes figures (failures, connections never established), not a hang.
"""

import asyncio
import hashlib
import os
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests

from tests import oci

TIMEOUT = 10.0  # seconds for any step a well-behaved server answers at once
DOWNLOAD_BLOB_SIZE = 8 * 1024 * 1024  # far beyond what socket buffers hold, so a download stays in flight
DECLARED_UPLOAD = 1 << 30  # the Content-Length a slow upload's PATCH announces
RECEIVE_BUFFER = 4096  # a slow download's SO_RCVBUF (the kernel doubles it)
READ_PIECE = 1024  # what a slow download reads per second
HEADER_BYTE_EVERY = 3.0  # seconds between two bytes of a slow header
UPLOAD_BYTE_EVERY = 1.0
OPENING_AT_ONCE = 64  # connections being set up at a time: a burst of thousands overflows the listen backlog
KEPT = 64 * 1024  # bytes of a held connection's answer kept for the assertions


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to the hard one (servers it starts inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass(frozen=True)
class Mix:
    """How many connections of each kind are held."""

    idle: int
    slow_headers: int
    uploads: int
    downloads: int

    @classmethod
    def scaled(cls, connections: int) -> "Mix":
        """The issue's proportions (200:200:100:50) for ``connections`` in all."""
        parts = {"idle": 200, "slow_headers": 200, "uploads": 100, "downloads": 50}
        counts = {kind: connections * share // 550 for kind, share in parts.items()}
        counts["idle"] += connections - sum(counts.values())
        return cls(**counts)

    @property
    def total(self) -> int:
        return self.idle + self.slow_headers + self.uploads + self.downloads


ISSUE_MIX = Mix(idle=200, slow_headers=200, uploads=100, downloads=50)


@dataclass(frozen=True)
class Registry:
    """A server with a repository ready for the mix: a tagged manifest and a multi-MiB blob in it."""

    url: str  # http://HOST:PORT
    headers: dict[str, str]  # what every request sends (Authorization, when the server wants it)
    repository: str
    tag: str = "slow"
    manifest_digest: str = ""  # what a manifest GET by ``tag`` must bring
    blob_digest: str = ""  # the blob the slow downloads read

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc


def prepare(url: str, repository: str, headers: dict[str, str] | None = None, tag: str = "slow") -> Registry:
    """Push an image whose one layer is ``DOWNLOAD_BLOB_SIZE`` random bytes to ``repository:tag``."""
    headers = dict(headers or {})
    layer = oci.Blob(os.urandom(DOWNLOAD_BLOB_SIZE))
    config = oci.config(repository)
    manifest = oci.image_manifest(config, [layer])
    with requests.Session() as session:
        session.headers.update(headers)
        for blob in (config, layer):  # POST, then PUT with the bytes: what every registry takes
            response = session.post(f"{url}/v2/{repository}/blobs/uploads/", timeout=60)
            assert response.status_code == 202, response.text
            response = session.put(
                urljoin(url, response.headers["Location"]),
                params={"digest": blob.digest},
                data=blob.data,
                headers={"Content-Type": oci.OCTET_STREAM},
                timeout=60,
            )
            assert response.status_code == 201, response.text
        response = session.put(
            f"{url}/v2/{repository}/manifests/{tag}",
            data=manifest.data,
            headers={"Content-Type": oci.OCI_MANIFEST},
            timeout=60,
        )
        assert response.status_code == 201, response.text
    return Registry(url, headers, repository, tag, manifest.digest, layer.digest)


# --- HTTP/1.1 over asyncio streams ------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def request_head(registry: Registry, method: str, target: str, **headers: str) -> bytes:
    """A request line and headers (``Content_Length`` for ``Content-Length``), the blank line included."""
    fields = {"Host": registry.netloc, **registry.headers}
    fields.update({name.replace("_", "-"): value for name, value in headers.items()})
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in fields.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def connect(
    registry: Registry, receive_buffer: int | None = None, limit: int = 64 * 1024
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A fresh connection; ``receive_buffer`` sets SO_RCVBUF before connecting (so the window stays small)."""
    if receive_buffer is None:
        return await asyncio.open_connection(*registry.address, limit=limit)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, registry.address)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=limit)


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


async def read_answer(reader: asyncio.StreamReader, method: str = "GET") -> Answer:
    """One whole answer: its body by ``Content-Length``, chunks, or up to the close."""
    status, headers = await read_head(reader)
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # no trailers
    else:
        body = await reader.read()
    return Answer(status, headers, body)


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """What arrives until the server closes the connection (kept up to ``KEPT`` bytes)."""
    received = b""
    while True:
        try:
            piece = await reader.read(64 * 1024)
        except ConnectionError:
            return received
        if not piece:
            return received
        received = (received + piece)[:KEPT]


def close(writer: asyncio.StreamWriter) -> None:
    writer.close()  # the transport goes at once; nothing to wait for


# --- The held connections ---------------------------------------------------------------------


@dataclass
class Held:
    """One held connection, as the client sees it (times from ``time.monotonic``)."""

    kind: str
    started: float = 0.0
    established: float | None = None  # connected, and its request under way (an upload's PATCH head sent)
    ended: float | None = None  # the server closed it (read returned b'' or the connection was reset)
    status: int | None = None  # a download's GET status; an upload's PATCH answer, if one came
    location: str | None = None  # an upload's URL
    received: bytes = b""  # what arrived after the held request started (an upload's answer, a close's)
    error: str | None = None  # why it could not be set up
    ready: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # established, or failed

    def establish(self) -> None:
        self.established = time.monotonic()
        self.ready.set()

    @property
    def open(self) -> bool:
        return self.established is not None and self.ended is None

    def lifetime(self) -> float | None:
        """Seconds from the start of its request (or connection) to the server's close."""
        return None if self.ended is None or self.established is None else self.ended - self.established


class Crowd:
    """``mix`` held open against ``registry`` from this event loop, for as long as the block lasts.

    Entering sets every connection up (at most ``OPENING_AT_ONCE`` at a time, each step bounded by
    ``TIMEOUT``); ``held`` then tells, per connection, what the client saw. Leaving closes them all.
    """

    def __init__(self, registry: Registry, mix: Mix, header_byte_every: float = HEADER_BYTE_EVERY) -> None:
        self.registry, self.mix, self.header_byte_every = registry, mix, header_byte_every
        self.held: list[Held] = []
        self._tasks: list[asyncio.Task] = []
        self._opening = asyncio.Semaphore(OPENING_AT_ONCE)

    async def __aenter__(self) -> "Crowd":
        kinds: list[tuple[str, Callable[[Held], Awaitable[None]]]] = [
            ("idle", self._idle),
            ("slow header", self._slow_header),
            ("upload", self._upload),
            ("download", self._download),
        ]
        counts = (self.mix.idle, self.mix.slow_headers, self.mix.uploads, self.mix.downloads)
        for (kind, hold), count in zip(kinds, counts, strict=True):
            for _ in range(count):
                held = Held(kind)
                self.held.append(held)
                self._tasks.append(asyncio.create_task(self._run(hold, held)))
        await asyncio.gather(*(held.ready.wait() for held in self.held))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def count(self, kind: str | None = None, *, still_open: bool = False) -> int:
        """How many of ``kind`` (all kinds by default) were established (and are still open)."""
        return sum(
            1
            for held in self.held
            if (kind is None or held.kind == kind) and held.established and (held.open or not still_open)
        )

    def summary(self) -> str:
        kinds = dict.fromkeys(held.kind for held in self.held)
        parts = []
        for kind in kinds:
            total = sum(1 for held in self.held if held.kind == kind)
            parts.append(f"{kind} {self.count(kind, still_open=True)}/{self.count(kind)}/{total}")
        errors = sorted({held.error for held in self.held if held.error})
        return (
            "open/established/asked: "
            + ", ".join(parts)
            + (f"; errors such as {errors[:3]}" if errors else "")
        )

    async def _run(self, hold: Callable[[Held], Awaitable[None]], held: Held) -> None:
        held.started = time.monotonic()
        try:
            await hold(held)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
            held.error = held.error or f"{type(exc).__name__}: {exc}"
        finally:
            held.ready.set()

    async def _open(
        self, held: Held, receive_buffer: int | None = None, limit: int = 64 * 1024
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with self._opening:
            return await asyncio.wait_for(connect(self.registry, receive_buffer, limit), TIMEOUT)

    async def _idle(self, held: Held) -> None:
        reader, writer = await self._open(held)
        try:
            held.establish()
            await self._wait_close(held, reader)
        finally:
            close(writer)

    async def _slow_header(self, held: Held) -> None:
        reader, writer = await self._open(held)
        try:
            writer.write(f"GET /v2/ HTTP/1.1\r\nHost: {self.registry.netloc}\r\nX-Slow: ".encode())
            await writer.drain()
            held.establish()
            await self._trickle(held, reader, writer, b"a", self.header_byte_every)
        finally:
            close(writer)

    async def _upload(self, held: Held) -> None:
        reader, writer = await self._open(held)
        try:
            start = f"/v2/{self.registry.repository}/blobs/uploads/"
            writer.write(request_head(self.registry, "POST", start, Content_Length="0"))
            answer = await asyncio.wait_for(read_answer(reader, "POST"), TIMEOUT)
            if answer.status != 202 or "location" not in answer.headers:
                held.error = f"POST answered {answer.status}: {answer.body[:200]!r}"
                return
            held.location = urljoin(self.registry.url, answer.headers["location"])
            target = urlsplit(held.location)
            path = target.path + (f"?{target.query}" if target.query else "")
            writer.write(
                request_head(
                    self.registry,
                    "PATCH",
                    path,
                    Content_Type=oci.OCTET_STREAM,
                    Content_Length=str(DECLARED_UPLOAD),
                )
            )
            await writer.drain()
            held.establish()
            await self._trickle(held, reader, writer, b"\0", UPLOAD_BYTE_EVERY)
            if held.received.startswith(b"HTTP/1.1 "):
                held.status = int(held.received.split()[1])
        finally:
            close(writer)

    async def _download(self, held: Held) -> None:
        reader, writer = await self._open(held, RECEIVE_BUFFER, limit=4 * READ_PIECE)
        try:
            blob = f"/v2/{self.registry.repository}/blobs/{self.registry.blob_digest}"
            writer.write(request_head(self.registry, "GET", blob))
            held.status, _ = await asyncio.wait_for(read_head(reader), TIMEOUT)
            if held.status != 200:
                held.error = f"GET answered {held.status}"
                return
            held.establish()
            while True:
                try:
                    piece = await reader.read(READ_PIECE)
                except ConnectionError:
                    piece = b""
                if not piece:
                    held.ended = time.monotonic()
                    return
                await asyncio.sleep(1.0)
        finally:
            close(writer)

    async def _wait_close(self, held: Held, reader: asyncio.StreamReader) -> None:
        held.received = await until_closed(reader)
        held.ended = time.monotonic()

    async def _trickle(
        self,
        held: Held,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        byte: bytes,
        every: float,
    ) -> None:
        """Send ``byte`` every ``every`` seconds until the server answers or closes; wait for its close."""
        reading = asyncio.create_task(self._wait_close(held, reader))
        try:
            while not reading.done():
                await asyncio.wait([reading], timeout=every)
                if reading.done():
                    break
                try:
                    writer.write(byte)
                    await writer.drain()
                except ConnectionError:
                    break  # the server is gone; its close reaches the reader
            await reading
        finally:
            reading.cancel()


# --- The well-behaved client ------------------------------------------------------------------


@dataclass
class Probes:
    """Manifest GETs on fresh connections: the seconds each answered one took, and what went wrong."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies) + len(self.failures)

    @property
    def success_rate(self) -> float:
        return len(self.latencies) / self.count if self.count else 0.0

    def percentile(self, share: float) -> float:
        """Seconds within which ``share`` of all requests succeeded (a failure counts as never)."""
        ordered = sorted(self.latencies) + [float("inf")] * len(self.failures)
        if not ordered:
            return float("inf")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self) -> str:
        reasons = sorted(set(self.failures))[:3]
        return (
            f"{len(self.latencies)}/{self.count} succeeded ({100 * self.success_rate:.1f}%), "
            f"p50 {1000 * self.percentile(0.50):.1f} ms, p99 {1000 * self.percentile(0.99):.1f} ms"
            + (f"; failures such as {reasons}" if reasons else "")
        )


async def probe_manifests(registry: Registry, count: int, seconds: float, timeout: float = 5.0) -> Probes:
    """``count`` manifest GETs by tag, one started every ``seconds / count`` whatever the answers
    (each on a fresh connection, bounded by ``timeout``): the whole answer and its digest must arrive."""
    probes = Probes()
    target = f"/v2/{registry.repository}/manifests/{registry.tag}"
    head = request_head(registry, "GET", target, Accept=oci.MANIFEST_ACCEPT, Connection="close")

    async def one() -> None:
        started = time.perf_counter()
        writer = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await connect(registry)
                writer.write(head)
                answer = await read_answer(reader)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            probes.failures.append(type(exc).__name__)
            return
        finally:
            if writer is not None:
                close(writer)
        digest = "sha256:" + hashlib.sha256(answer.body).hexdigest()
        if answer.status != 200 or digest != registry.manifest_digest:
            probes.failures.append(f"status {answer.status}")
            return
        probes.latencies.append(time.perf_counter() - started)

    tasks = []
    interval = seconds / count
    begun = time.monotonic()
    for index in range(count):
        await asyncio.sleep(max(0.0, begun + index * interval - time.monotonic()))
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return probes
