"""ASGI entry point: ``python -m crow.serve`` serves ``crow.asgi:application`` with granian.

Each request is measured and logged once, here (``crow.recording``);
``/healthz``, ``/readyz`` and ``/metrics`` are answered by ``crow.monitoring``;
any other goes first to ``crow.fastpath`` (hot reads, answered on the event
loop), then to Django's WSGI application (``crow.wsgi``) in a thread, through
CRoW's own bridge (``crow.bridge``): ``CROW_THREADS`` threads per worker, and a
body that sends nothing for ``CROW_BODY_TIMEOUT`` seconds ends its read. Each
worker's lifespan starts its webhook seat (``crow.webhooks``): one of them delivers.
Importing this module sets Django up and compiles the routes, opening no
database connection: ``crow.serve`` imports it before granian forks its workers.
"""

import asyncio
import os
import threading

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")

from crow.wsgi import application as wsgi_application  # noqa: E402  (sets Django up)

# isort: split
from crow import fastpath, monitoring, recording, serve, webhooks  # noqa: E402  (they import the registry: after setup)
from crow.bridge import Bridge  # noqa: E402
from registry.db import connections  # noqa: E402

django = Bridge(
    wsgi_application,
    threads=serve.threads(),
    body_threads=serve.body_threads(),
    body_timeout=serve.body_timeout(),
)


async def application(scope, receive, send) -> None:
    if scope["type"] == "http":
        await recording.record(_serve, scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def _serve(scope, receive, send) -> None:
    if scope["path"] in monitoring.PATHS:
        await monitoring.serve(scope, receive, send)
    elif not await fastpath.serve(scope, receive, send):
        # A write's answer waits until this process's cache has seen what it changed.
        send = fastpath.settled(send) if fastpath.changes(scope) else send
        await django(recording.for_django(scope), receive, send)


async def _lifespan(receive, send) -> None:
    seat = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await fastpath.startup()
            recording.start()
            seat = webhooks.seat()
            threading.Thread(target=connections.open_pool, name="crow-open-pool", daemon=True).start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await fastpath.shutdown()
            recording.stop()
            if seat is not None:
                await asyncio.to_thread(seat.stop)
            monitoring.worker_stopped()
            await send({"type": "lifespan.shutdown.complete"})
            return
