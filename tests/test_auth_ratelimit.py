"""Failed logins are limited per client address and per username, and logged without secrets."""

import logging

import pytest
from django.test import Client

from tests import access, oci

pytestmark = [pytest.mark.auth, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def world(settings, tmp_path) -> None:
    access.secure(settings, tmp_path)
    settings.CROW_LOGIN_FAILURES = 3
    settings.CROW_LOGIN_WINDOW = 120
    access.user("alice")
    access.user("bob")


def login(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.get("/v2/", headers=access.basic(username, password), REMOTE_ADDR=address)


def test_it_locks_a_username_out_after_too_many_failures_from_anywhere(client: Client) -> None:
    for attempt in range(3):
        oci.assert_error(login(client, "alice", "wrong", f"10.0.0.{attempt}"), 401, "UNAUTHORIZED")

    response = login(client, "alice", access.PASSWORD, "10.0.0.99")

    oci.assert_error(response, 429, "TOOMANYREQUESTS")
    assert response["Retry-After"] == "120"
    assert login(client, "bob", access.PASSWORD, "10.0.0.99").status_code == 200


def test_it_locks_an_address_out_after_too_many_failures_for_anyone(client: Client) -> None:
    for username in ("carol", "dave", "erin"):
        login(client, username, "wrong")

    oci.assert_error(login(client, "bob", access.PASSWORD), 429, "TOOMANYREQUESTS")
    assert login(client, "bob", access.PASSWORD, "10.0.0.2").status_code == 200


def test_it_limits_the_token_service_too(client: Client) -> None:
    for _ in range(3):
        client.get("/token", headers=access.basic("alice", "wrong"))

    response = client.get("/token", headers=access.basic("alice", access.PASSWORD))

    oci.assert_error(response, 429, "TOOMANYREQUESTS")


def test_it_limits_robots_by_name(client: Client) -> None:
    for _ in range(3):
        login(client, "robot$ci", "crow_wrong", "10.0.0.5")

    oci.assert_error(login(client, "robot$ci", "crow_wrong", "10.0.0.6"), 429, "TOOMANYREQUESTS")


def test_it_logs_failures_without_the_password(client: Client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="registry.auth"):
        login(client, "alice", "hunter2-secret")
        client.get("/v2/", headers=access.bearer("eyJhbGciOiJFUzI1NiJ9.e30.c2lnbmF0dXJl"))

    assert "'alice'" in caplog.text and "10.0.0.1" in caplog.text
    assert "hunter2-secret" not in caplog.text
    assert "c2lnbmF0dXJl" not in caplog.text


def test_it_counts_by_the_proxy_header_behind_a_proxy(client: Client, settings) -> None:
    settings.CROW_CLIENT_ADDRESS_HEADER = "X-Forwarded-For"

    def through_proxy(client_address: str, password: str):
        # The client may send any X-Forwarded-For; the proxy appends the address it saw.
        forwarded = f"203.0.113.9, {client_address}"
        return client.get("/v2/", headers={**access.basic("bob", password), "X-Forwarded-For": forwarded})

    for username in ("carol", "dave", "erin"):
        client.get("/v2/", headers={**access.basic(username, "x"), "X-Forwarded-For": "198.51.100.1"})

    oci.assert_error(through_proxy("198.51.100.1", access.PASSWORD), 429, "TOOMANYREQUESTS")
    assert through_proxy("198.51.100.2", access.PASSWORD).status_code == 200


def test_it_does_not_count_successes(client: Client) -> None:
    for _ in range(5):
        assert login(client, "alice", access.PASSWORD).status_code == 200
