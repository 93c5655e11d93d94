"""Where failed logins are counted: a store every server process shares, chosen by configuration.

- ``DatabaseCounters`` (the default): a table of the registry's own database,
  counted with one atomic UPDATE per failure. Django's database cache would
  need ``createcachetable`` wherever the registry starts, and its ``incr`` is
  a read and a write: concurrent failures, from an attacker who sends them in
  parallel on purpose, would be lost.
- ``CacheCounters``: Django's cache, with ``CROW_REDIS_URL`` Redis, whose
  INCR is atomic. Each counter is a key that expires with its window.

Both count in fixed windows that start with a key's first failure.
"""

from datetime import timedelta
from typing import Protocol

from django.conf import settings
from django.core.cache import caches

from registry.auth.models import LoginFailures


class Counters(Protocol):
    def counts(self, keys: list[str]) -> dict[str, int]: ...

    def add(self, key: str, window: int) -> None: ...


class DatabaseCounters:
    def counts(self, keys: list[str]) -> dict[str, int]:
        return LoginFailures.objects.counts(keys)

    def add(self, key: str, window: int) -> None:
        LoginFailures.objects.sweep()
        LoginFailures.objects.add(key, timedelta(seconds=window))


class CacheCounters:
    # Keys of their own in a cache that may hold other things.
    NAMESPACE = "login-failures:"

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    def counts(self, keys: list[str]) -> dict[str, int]:
        found = caches[self.alias].get_many([self.NAMESPACE + key for key in keys])
        return {key.removeprefix(self.NAMESPACE): count for key, count in found.items()}

    def add(self, key: str, window: int) -> None:
        cache = caches[self.alias]
        key = self.NAMESPACE + key
        if cache.add(key, 1, timeout=window):  # the first failure starts the window
            return
        try:
            count = cache.incr(key)
        except ValueError:  # the window ended since add()
            cache.add(key, 1, timeout=window)
            return
        if count == 1:
            # Django's Redis incr() checks that the key exists, then INCRs: a key that expired in
            # between comes back without an expiry, and would count for ever. Give it one.
            cache.touch(key, window)


def chosen() -> Counters:
    """The store ``CROW_LOGIN_COUNTERS`` names: ``cache`` where Redis is configured, else ``database``."""
    return CacheCounters() if settings.CROW_LOGIN_COUNTERS == "cache" else DatabaseCounters()
