"""Slow and idle clients against a real server (issue 17: availability and timeouts).

With default settings, a few hundred connections of each slow kind held open
(``tests.slowclients.ISSUE_MIX``) must not stop a well-behaved client's
manifest GETs on fresh connections. With short timeouts, the server closes what
never completes its headers and what idles between requests, ends a stalled
upload with the bytes it received kept (the client resumes from ``GET`` on the
upload URL), and never cuts an upload that keeps moving, however slowly.

The stalled upload's 408 and its saved offset come with the bridge's body
timeout (``CROW_BODY_TIMEOUT``); the header and keep-alive timeouts with the
server's own (``CROW_HEADER_TIMEOUT``). On gunicorn's gthread workers every
test here fails: the held uploads and downloads take every thread, a
connection that sends nothing is never closed, a stalled upload never ended.
"""

import asyncio
import hashlib
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urljoin

import pytest

from tests import oci
from tests.server import Server
from tests.slowclients import (
    ISSUE_MIX,
    Answer,
    Crowd,
    Mix,
    Registry,
    close,
    connect,
    prepare,
    probe_manifests,
    raise_open_files_limit,
    read_answer,
    request_head,
    until_closed,
)

pytestmark = pytest.mark.realserver

NAME = "team/app"
PROBES = 300  # manifest GETs by the well-behaved client ...
PROBE_SECONDS = 10.0  # ... spread over this long
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
SHORT_TIMEOUTS = {"CROW_HEADER_TIMEOUT": "2", "CROW_BODY_TIMEOUT": "2"}
GRACE = 3.0  # how long after its bound a timeout may act on this shared machine
STALLED_AFTER = 1000  # bytes a stalled upload sends before it stops
STEADY = b"steady"  # sent one byte a second: three times the body timeout


@pytest.fixture(autouse=True)
def open_files() -> None:
    """Enough descriptors for the crowd, here and in the server this process starts."""
    raise_open_files_limit()


@pytest.fixture
def server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Default settings, or the parameter's."""
    return dict(getattr(request, "param", {}))


def registry_of(server: Server) -> Registry:
    return Registry(server.url, {"Authorization": f"Bearer {server.token(NAME)}"}, NAME)


def test_it_answers_manifest_gets_while_slow_clients_hold_connections(registry_server: Server) -> None:
    token = {"Authorization": f"Bearer {registry_server.token(NAME)}"}
    registry = prepare(registry_server.url, NAME, token)

    async def hold_and_probe() -> tuple[str, int, str]:
        async with Crowd(registry, ISSUE_MIX) as crowd:
            probes = await probe_manifests(registry, PROBES, PROBE_SECONDS)
            held = crowd.count(still_open=True)
            summary = crowd.summary()
        print(f"\nheld: {summary}\nmanifest GETs while held: {probes.summary()}")
        assert probes.success_rate >= 0.99, probes.summary()
        assert probes.percentile(0.99) < 0.250, probes.summary()
        return summary, held, probes.summary()

    summary, held, _ = asyncio.run(hold_and_probe())
    # The crowd really was there throughout: every connection set up, and none closed by the server.
    assert held == ISSUE_MIX.total, summary


@pytest.mark.parametrize("server_env", [SHORT_TIMEOUTS], indirect=True, ids=["short timeouts"])
def test_it_closes_idle_slow_header_and_idle_keep_alive_connections(registry_server: Server) -> None:
    registry = registry_of(registry_server)
    mix = Mix(idle=10, slow_headers=10, uploads=0, downloads=0)

    async def scenario() -> tuple[Crowd, float, bytes]:
        keep_alive = asyncio.create_task(one_request_then_idle(registry))
        # A byte every half second: the header timeout bounds the whole head, not a pause.
        async with Crowd(registry, mix, header_byte_every=0.5) as crowd:
            await asyncio.sleep(HEADER_TIMEOUT + GRACE + 0.5)
        return crowd, *await keep_alive

    crowd, keep_alive_lifetime, after_keep_alive = asyncio.run(scenario())
    assert crowd.count() == mix.total, crowd.summary()
    for held in crowd.held:
        lifetime = held.lifetime()
        assert lifetime is not None, f"{held.kind} connection still open: {crowd.summary()}"
        assert HEADER_TIMEOUT - 0.5 <= lifetime <= HEADER_TIMEOUT + GRACE, (held.kind, lifetime)
        assert closed_without_answer(held.received), (held.kind, held.received[:200])
    assert HEADER_TIMEOUT - 0.5 <= keep_alive_lifetime <= HEADER_TIMEOUT + GRACE
    assert closed_without_answer(after_keep_alive), after_keep_alive[:200]


async def one_request_then_idle(registry: Registry) -> tuple[float, bytes]:
    """GET /v2/ (answered 200), then nothing: the seconds until the server closes, and what it sent."""
    reader, writer = await connect(registry)
    try:
        writer.write(request_head(registry, "GET", "/v2/"))
        answer = await asyncio.wait_for(read_answer(reader), 10)
        assert answer.status == 200, answer
        assert answer.headers.get("connection", "keep-alive").lower() != "close", answer.headers
        answered = time.monotonic()
        received = await asyncio.wait_for(until_closed(reader), HEADER_TIMEOUT + GRACE + 5)
        return time.monotonic() - answered, received
    finally:
        close(writer)


def closed_without_answer(received: bytes) -> bool:
    """A connection closed for its timeout gets nothing, or a 408 at most."""
    return received == b"" or received.startswith(b"HTTP/1.1 408 ")


@pytest.mark.parametrize("server_env", [SHORT_TIMEOUTS], indirect=True, ids=["short timeouts"])
def test_it_ends_a_stalled_upload_with_its_offset_saved_and_never_cuts_a_steady_one(
    registry_server: Server,
) -> None:
    registry = registry_of(registry_server)
    stalled, steady = asyncio.run(both(stalled_upload(registry), steady_upload(registry)))

    http = registry_server.session(NAME)
    location, answer = steady
    assert answer.status == 202, answer
    assert answer.headers["range"] == f"0-{len(STEADY) - 1}"
    digest = "sha256:" + hashlib.sha256(STEADY).hexdigest()
    finished = http.put(location, params={"digest": digest}, timeout=30)
    assert finished.status_code == 201, finished.text
    pulled = http.get(f"{registry_server.url}/v2/{NAME}/blobs/{digest}", timeout=30)
    assert pulled.content == STEADY

    location, answered_after, received = stalled
    assert received.startswith(b"HTTP/1.1 408 "), received[:300]  # then the connection closed
    assert answered_after <= BODY_TIMEOUT + GRACE, answered_after
    status = http.get(location, timeout=30)
    assert status.status_code == 204, status.text
    assert status.headers["Range"] == f"0-{STALLED_AFTER - 1}"


async def both(*coroutines: Coroutine[Any, Any, Any]) -> list[Any]:
    return await asyncio.gather(*coroutines)


async def start_patch(
    registry: Registry, declared: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A new session (POST), then a PATCH head declaring ``declared`` bytes; its body is the caller's."""
    reader, writer = await connect(registry)
    writer.write(request_head(registry, "POST", f"/v2/{NAME}/blobs/uploads/", Content_Length="0"))
    answer = await asyncio.wait_for(read_answer(reader), 10)
    assert answer.status == 202, answer
    location = urljoin(registry.url, answer.headers["location"])
    writer.write(
        request_head(
            registry,
            "PATCH",
            location.removeprefix(registry.url),
            Content_Type=oci.OCTET_STREAM,
            Content_Length=str(declared),
        )
    )
    await writer.drain()
    return reader, writer, location


async def stalled_upload(registry: Registry) -> tuple[str, float, bytes]:
    """1,000 bytes of a declared MiB, then nothing: the seconds until the server answers and closes."""
    reader, writer, location = await start_patch(registry, 1024 * 1024)
    try:
        writer.write(b"s" * STALLED_AFTER)
        await writer.drain()
        stopped = time.monotonic()
        try:
            received = await asyncio.wait_for(until_closed(reader), BODY_TIMEOUT + GRACE + 5)
        except TimeoutError:
            received = b"(nothing: still open)"
        return location, time.monotonic() - stopped, received
    finally:
        close(writer)


async def steady_upload(registry: Registry) -> tuple[str, Answer]:
    """``STEADY`` one byte a second, then the server's answer."""
    reader, writer, location = await start_patch(registry, len(STEADY))
    try:
        for byte in STEADY:
            await asyncio.sleep(1.0)
            writer.write(bytes([byte]))
            await writer.drain()
        return location, await asyncio.wait_for(read_answer(reader), 10)
    finally:
        close(writer)
