"""ASGI entry point: ``granian --interface asgi crow.asgi:application``.

Each request goes first to ``crow.fastpath`` (hot reads, answered on the event
loop), then to Django's WSGI application (``crow.wsgi``) in a thread.
"""

import os

from a2wsgi import WSGIMiddleware

from crow import fastpath

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")

from crow.wsgi import application as wsgi_application  # noqa: E402  (sets Django up)

django = WSGIMiddleware(wsgi_application, workers=64)


async def application(scope, receive, send) -> None:
    if scope["type"] == "http":
        if not await fastpath.serve(scope, receive, send):
            await django(scope, receive, send)
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
