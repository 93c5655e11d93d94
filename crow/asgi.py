"""ASGI entry point: ``granian --interface asgi crow.asgi:application``.

Each request goes first to ``crow.fastpath`` (hot reads, answered on the event
loop), then to Django's WSGI application (``crow.wsgi``) in a thread.
"""

import os

from a2wsgi import WSGIMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")

from crow.wsgi import application as wsgi_application  # noqa: E402  (sets Django up)

django = WSGIMiddleware(wsgi_application, workers=64)

from crow import fastpath  # noqa: E402  (imports the registry: after Django is set up)


async def application(scope, receive, send) -> None:
    if scope["type"] == "http":
        if not await fastpath.serve(scope, receive, send):
            # A write's answer waits until this process's cache has seen what it changed.
            await django(
                scope, _coroutine(receive), fastpath.settled(send) if fastpath.changes(scope) else send
            )
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


def _coroutine(receive):
    """``receive`` as a coroutine function: a2wsgi hands it to ``run_coroutine_threadsafe``, which
    refuses granian's awaitable (every request body broke off with "A coroutine object is required")."""

    async def received() -> dict:
        return await receive()

    return received


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
