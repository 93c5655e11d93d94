"""ASGI entry point: ``python -m crow.serve`` serves ``crow.asgi:application`` with granian.

Each request goes first to ``crow.fastpath`` (hot reads, answered on the event
loop), then to Django's WSGI application (``crow.wsgi``) in a thread, through
CRoW's own bridge (``crow.bridge``): ``CROW_THREADS`` threads per worker, and a
body that sends nothing for ``CROW_BODY_TIMEOUT`` seconds ends its read.
Importing this module sets Django up and compiles the routes, opening no
database connection: ``crow.serve`` imports it before granian forks its workers.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")

from crow.wsgi import application as wsgi_application  # noqa: E402  (sets Django up)

# isort: split
from crow import fastpath, serve  # noqa: E402  (fastpath imports the registry: after Django is set up)
from crow.bridge import Bridge  # noqa: E402

django = Bridge(
    wsgi_application,
    threads=serve.threads(),
    body_threads=serve.body_threads(),
    body_timeout=serve.body_timeout(),
)


async def application(scope, receive, send) -> None:
    if scope["type"] == "http":
        if not await fastpath.serve(scope, receive, send):
            # A write's answer waits until this process's cache has seen what it changed.
            await django(scope, receive, fastpath.settled(send) if fastpath.changes(scope) else send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await fastpath.startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await fastpath.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
