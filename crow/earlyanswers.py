"""An answer given before the request's body was read must reach the client.

The registry answers some requests without reading their body: a manifest
over the size limit (413), credentials refused on a PUT or PATCH (401/403), a
PATCH to an unknown upload (404), a chunk refused (416). Many clients
(Python's ``http.client`` and ``urllib``, anything without
``Expect: 100-continue``) send the whole body before they read the answer.
A server that answers and closes with the client's bytes still arriving
makes the kernel reset the connection (unread bytes in a closed socket), and
the client sees a broken pipe instead of the answer: granian does this when
an application returns with its body unread.

So, once Django has answered (``crow.bridge``), the rest of the body is read
and discarded on the event loop, where a waiting connection holds no thread:
up to ``DRAIN_LIMIT`` bytes within ``DRAIN_TIMEOUT``, and then the answer goes
out and the connection stays open for the next request. Past either bound, or
when the body already failed (stalled, cut), the answer goes out with
``Connection: close`` and the connection lingers: what still arrives is
discarded for at most ``LINGER`` seconds, so the client reads the answer
before granian closes the socket.
"""

import asyncio
import contextlib
from typing import Any, Protocol

DRAIN_LIMIT = 8 * 1024 * 1024  # bytes of an unread body discarded to keep the connection
DRAIN_TIMEOUT = 5.0  # seconds, for those bytes to arrive
LINGER = 5.0  # seconds a closing connection keeps discarding what the client still sends


class Body(Protocol):
    ended: bool
    failed: BaseException | None

    async def next_piece(self) -> bytes: ...

    async def stop(self) -> None: ...


async def answer_then_drain(body: Body, messages: list[dict[str, Any]], send: Any) -> None:
    """Send ``messages`` (the rest of the answer) once ``body`` is read, or with ``Connection: close``."""
    kept = body.failed is None and await _drain(body, DRAIN_LIMIT, DRAIN_TIMEOUT)
    if not kept:
        await body.stop()  # a receive left waiting would hold back the answer (granian)
        for message in messages:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"connection", b"close")]
    for message in messages:
        await send(message)
    if not kept and body.failed is None:
        await _drain(body, None, LINGER)


async def _drain(body: Body, limit: int | None, seconds: float) -> bool:
    """Discard the body to its end, at most ``limit`` bytes (None: any) in ``seconds``: True if it ended."""
    drained = 0
    with contextlib.suppress(TimeoutError, OSError):  # the bound, a stalled body, a client gone
        async with asyncio.timeout(seconds):
            while not body.ended and (limit is None or drained <= limit):
                drained += len(await body.next_piece())
    return body.ended
