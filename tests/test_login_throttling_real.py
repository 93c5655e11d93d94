"""Login throttling across the server's processes, for real: three gunicorn workers, each on its own
socket (SO_REUSEPORT), and every request on a fresh connection, so the kernel spreads them over the
workers. Behind a trusted proxy (loopback, sending ``X-Forwarded-For``) one test stands for several
client addresses.

The victim is the server's robot: an attacker who fails its logins from one address is refused there
(429, whichever worker answers), while the robot's right secret from another address still works.
Counted in the database by default, in Redis with ``CROW_REDIS_URL``.
"""

from collections.abc import Iterator

import pytest
import requests
from django.core.cache import caches

from registry.auth.counters import CacheCounters
from tests import sharedcache
from tests.server import Server

FAILURES = 4
ATTACKER = "198.51.100.66"
VICTIM = "203.0.113.7"
# Beyond the limit, each answer may come from any worker: all of them must refuse.
REFUSED_TRIES = 6


def _env(**extra: str) -> dict[str, str]:
    return {
        "CROW_WORKERS": "3",
        "CROW_THREADS": "2",
        "CROW_TRUSTED_PROXIES": "127.0.0.1",
        "CROW_LOGIN_FAILURES": str(FAILURES),
        "CROW_LOGIN_WINDOW": "10m",
        **extra,
    }


def _token(server: Server, password: str, address: str) -> requests.Response:
    # requests.get opens a new connection each time: no keep-alive pins the client to one worker.
    return requests.get(
        f"{server.url}/token",
        params={"scope": "repository:team/app:pull"},
        auth=(server.username, password),
        headers={"X-Forwarded-For": address, "Connection": "close"},
        timeout=60,
    )


def _v2(server: Server, password: str, address: str) -> requests.Response:
    return requests.get(
        f"{server.url}/v2/",
        auth=(server.username, password),
        headers={"X-Forwarded-For": address, "Connection": "close"},
        timeout=60,
    )


def _assert_throttled_across_workers(server: Server, ask, attacker: str, victim: str) -> None:
    for _ in range(FAILURES):
        assert ask(server, "crow_wrong", attacker).status_code == 401

    for _ in range(REFUSED_TRIES):  # even with the right secret, from the attacker's address
        refused = ask(server, server.password, attacker)
        assert refused.status_code == 429, refused.text
        assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert refused.headers["Retry-After"] == "600"

    assert ask(server, server.password, victim).status_code == 200


class TestInTheDatabase:
    @pytest.fixture
    def server_env(self) -> dict[str, str]:
        return _env()

    def test_failures_lock_the_attackers_address_out_of_the_token_service_only(
        self, registry_server: Server
    ) -> None:
        _assert_throttled_across_workers(registry_server, _token, ATTACKER, VICTIM)

    def test_the_same_on_basic_auth_of_v2(self, registry_server: Server) -> None:
        _assert_throttled_across_workers(registry_server, _v2, ATTACKER, VICTIM)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (never the whole server)."""
    with sharedcache.key_prefix() as prefix:
        yield prefix


class TestInRedis:
    @pytest.fixture
    def server_env(self, redis_prefix: str) -> dict[str, str]:
        return _env(CROW_REDIS_URL=sharedcache.REDIS_URL, CROW_REDIS_KEY_PREFIX=redis_prefix)

    def test_failures_lock_the_attackers_address_out_whichever_worker_answers(
        self, registry_server: Server, redis_prefix: str
    ) -> None:
        import redis

        _assert_throttled_across_workers(registry_server, _token, ATTACKER, VICTIM)
        _assert_throttled_across_workers(registry_server, _v2, "198.51.100.67", "203.0.113.8")

        # Counted in Redis under the test's prefix, each key expiring with its window.
        client = redis.Redis.from_url(sharedcache.REDIS_URL)
        keys = list(client.scan_iter(match=f"{redis_prefix}:*"))
        assert keys and all(0 < client.ttl(key) <= 600 for key in keys)
        client.close()


@pytest.mark.django_db
def test_a_redis_counter_left_without_expiry_gets_one(settings, redis_prefix: str) -> None:
    # Django's Redis incr() checks that the key exists, then INCRs: a key that expires in between
    # comes back as 1 with no expiry. The same state, made directly: the next failure gives it one.
    import redis

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": sharedcache.REDIS_URL,
            "KEY_PREFIX": redis_prefix,
        }
    }
    cache = caches["default"]
    cache.set(CacheCounters.NAMESPACE + "key", 0, timeout=None)

    CacheCounters().add("key", 600)

    assert CacheCounters().counts(["key"]) == {"key": 1}
    client = redis.Redis.from_url(sharedcache.REDIS_URL)
    (stored,) = client.scan_iter(match=f"{redis_prefix}:*")
    assert 0 < client.ttl(stored) <= 600
    client.close()
