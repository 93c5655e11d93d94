"""Hot reads answered without Django (placeholder: answers nothing yet, every request goes on to Django)."""


async def startup() -> None:
    """Lifespan start: open what the fast path keeps for the worker's life."""


async def shutdown() -> None:
    """Lifespan end: close it."""


async def serve(scope, receive, send) -> bool:
    """Answer ``scope`` and return True, or return False, having sent nothing, to let Django answer."""
    return False
