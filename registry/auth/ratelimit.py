"""Failed logins, counted per client address and per username in Django's cache.

After ``CROW_LOGIN_FAILURES`` failures within ``CROW_LOGIN_WINDOW`` (a fixed
window that starts with the first failure), every login from that address,
or for that username, is refused with 429 until the window ends, even with
the right password. Keys are hashed: usernames are client input.

The counters live in the default cache: with the built-in per-process
memory cache each server process counts on its own, so configure a shared
cache (Redis, memcached, the database) for one limit across processes.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache

from registry import errors
from registry.errors import RegistryError


def _keys(address: str, username: str) -> list[str]:
    keys = [f"address:{address}"]
    if username:
        keys.append(f"user:{username}")
    return ["crow:login-failures:" + hashlib.sha256(key.encode()).hexdigest() for key in keys]


def check(address: str, username: str) -> None:
    """Raise TOOMANYREQUESTS if the address or the username failed too often lately."""
    counts = cache.get_many(_keys(address, username))
    if any(count >= settings.CROW_LOGIN_FAILURES for count in counts.values()):
        raise RegistryError(
            errors.TOOMANYREQUESTS,
            "too many failed logins, retry later",
            headers={"Retry-After": str(settings.CROW_LOGIN_WINDOW)},
        )


def failed(address: str, username: str) -> None:
    for key in _keys(address, username):
        # add() starts the window; incr() is atomic in the cache backends that support it.
        cache.add(key, 0, timeout=settings.CROW_LOGIN_WINDOW)
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, timeout=settings.CROW_LOGIN_WINDOW)
