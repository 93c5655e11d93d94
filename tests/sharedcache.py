"""Redis at 127.0.0.1:6379, the shared cache real servers count failed logins in (``CROW_REDIS_URL``).

``key_prefix`` gives a test (or a module) a ``CROW_REDIS_KEY_PREFIX`` of its own and deletes its
keys afterwards, never the whole server's, which other test runs share. Without the redis package
or the server it skips, and fails in CI (``CI=true`` or ``CROW_REQUIRE_CLIENTS=1``).
"""

import importlib.util
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"


def _required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("CROW_REQUIRE_CLIENTS") == "1"


def _require_redis() -> None:
    if importlib.util.find_spec("redis") is not None:
        return
    reason = (
        "the redis package (pinned in requirements.txt) is not installed: pip install -r requirements.txt"
    )
    if _required():
        pytest.fail(f"{reason} (required in CI)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def key_prefix() -> Iterator[str]:
    """A key prefix of the caller's own; its keys are deleted when the block ends."""
    _require_redis()
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"crow-test-{uuid.uuid4().hex}"
    try:
        client.ping()
    except redis.ConnectionError as exc:
        if _required():
            pytest.fail(f"Redis at {REDIS_URL} is required in CI: {exc}", pytrace=False)
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
