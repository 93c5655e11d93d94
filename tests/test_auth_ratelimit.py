"""Failed logins are limited per client address and per address and account, and logged without secrets."""

import ipaddress
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from registry.auth.models import LoginFailures
from tests import access, oci

pytestmark = [pytest.mark.auth, pytest.mark.django_db]


@pytest.fixture(autouse=True, params=["database", "cache"])
def world(request: pytest.FixtureRequest, settings, tmp_path) -> None:
    """Each test runs on both counter stores: the database, and Django's cache (Redis in production;
    here the per-process memory cache, which behaves the same within one process)."""
    access.secure(settings, tmp_path)
    settings.CROW_LOGIN_COUNTERS = request.param
    settings.CROW_LOGIN_FAILURES = 3
    settings.CROW_LOGIN_ADDRESS_FAILURES = 5
    settings.CROW_LOGIN_WINDOW = 120
    access.user("alice")
    access.user("bob")


def login(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.get("/v2/", headers=access.basic(username, password), REMOTE_ADDR=address)


def test_it_locks_an_account_out_from_the_address_that_failed(client: Client) -> None:
    for _ in range(3):
        oci.assert_error(login(client, "alice", "wrong"), 401, "UNAUTHORIZED")

    response = login(client, "alice", access.PASSWORD)

    oci.assert_error(response, 429, "TOOMANYREQUESTS")
    assert response["Retry-After"] == "120"
    assert login(client, "bob", access.PASSWORD).status_code == 200


def test_nobody_can_lock_an_account_out_from_another_address(client: Client) -> None:
    # Far more failures than the account's limit, from the attacker's address...
    for _ in range(10):
        login(client, "alice", "wrong", "198.51.100.66")

    # ... lock out the attacker's address, never the victim's.
    oci.assert_error(login(client, "alice", access.PASSWORD, "198.51.100.66"), 429, "TOOMANYREQUESTS")
    assert login(client, "alice", access.PASSWORD, "10.0.0.1").status_code == 200


def test_failures_spread_over_addresses_lock_no_address(client: Client) -> None:
    for attempt in range(3):
        login(client, "alice", "wrong", f"10.0.1.{attempt}")

    assert login(client, "alice", access.PASSWORD, "10.0.1.0").status_code == 200


def test_it_locks_an_address_out_after_too_many_failures_for_anyone(client: Client) -> None:
    for username in ("carol", "dave", "erin", "frank", "grace"):
        login(client, username, "wrong")

    oci.assert_error(login(client, "bob", access.PASSWORD), 429, "TOOMANYREQUESTS")
    assert login(client, "bob", access.PASSWORD, "10.0.0.2").status_code == 200


def test_it_limits_the_token_service_too(client: Client) -> None:
    for _ in range(3):
        client.get("/token", headers=access.basic("alice", "wrong"))

    response = client.get("/token", headers=access.basic("alice", access.PASSWORD))

    oci.assert_error(response, 429, "TOOMANYREQUESTS")


def test_it_limits_robots_per_address_too(client: Client) -> None:
    for _ in range(3):
        login(client, "robot$ci", "crow_wrong", "10.0.0.5")

    oci.assert_error(login(client, "robot$ci", "crow_wrong", "10.0.0.5"), 429, "TOOMANYREQUESTS")
    oci.assert_error(login(client, "robot$ci", "crow_wrong", "10.0.0.6"), 401, "UNAUTHORIZED")


def test_it_logs_failures_without_the_password(client: Client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="registry.auth"):
        login(client, "alice", "hunter2-secret")
        client.get("/v2/", headers=access.bearer("eyJhbGciOiJFUzI1NiJ9.e30.c2lnbmF0dXJl"))

    assert "'alice'" in caplog.text and "10.0.0.1" in caplog.text
    assert "hunter2-secret" not in caplog.text
    assert "c2lnbmF0dXJl" not in caplog.text


@pytest.mark.parametrize("header", ["", "X-Real-IP"], ids=["x-forwarded-for", "named-header"])
def test_it_counts_by_the_address_a_trusted_proxy_saw(client: Client, settings, header: str) -> None:
    settings.CROW_TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)
    settings.CROW_CLIENT_ADDRESS_HEADER = header
    name = header or "X-Forwarded-For"

    def through_proxy(client_address: str, username: str, password: str, peer: str = "10.0.0.2"):
        # The client may send any address; the proxy appends the one it saw.
        forwarded = {name: f"203.0.113.9, {client_address}"}
        return client.get("/v2/", headers={**access.basic(username, password), **forwarded}, REMOTE_ADDR=peer)

    for username in ("carol", "dave", "erin", "frank", "grace"):
        through_proxy("198.51.100.1", username, "x")

    oci.assert_error(through_proxy("198.51.100.1", "bob", access.PASSWORD), 429, "TOOMANYREQUESTS")
    assert through_proxy("198.51.100.2", "bob", access.PASSWORD).status_code == 200
    # From anyone but the proxy, the header is the client's word: counted by its own address.
    assert through_proxy("198.51.100.1", "bob", access.PASSWORD, peer="192.0.2.50").status_code == 200


def test_it_does_not_count_successes(client: Client) -> None:
    for _ in range(5):
        assert login(client, "alice", access.PASSWORD).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_database_counts_every_failure_however_many_processes_count_at_once() -> None:
    # Threads with a connection each, as server processes have: one atomic UPDATE per failure
    # loses none (a read-then-write counter, as Django's database cache has, would).
    def fail(_: int) -> None:
        try:
            for _ in range(10):
                LoginFailures.objects.add("key", timedelta(minutes=5))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(fail, range(6)))

    assert LoginFailures.objects.counts(["key"]) == {"key": 60}


@pytest.mark.django_db
def test_a_window_that_ended_starts_again_and_is_swept() -> None:
    LoginFailures.objects.create(key="old", count=9, window_ends=timezone.now() - timedelta(seconds=1))

    assert LoginFailures.objects.counts(["old"]) == {}
    LoginFailures.objects.add("old", timedelta(minutes=5))
    assert LoginFailures.objects.counts(["old"]) == {"old": 1}

    LoginFailures.objects.filter(key="old").update(window_ends=timezone.now())
    LoginFailures.objects.sweep()
    assert not LoginFailures.objects.exists()
