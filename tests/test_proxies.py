"""``CROW_TRUSTED_PROXIES``: forwarding headers believed from the proxies named there, from nobody else.

On a real server trusting 127.0.0.1 only, the same request sent from 127.0.0.1 (the proxy) and
from 127.0.0.2 (anyone else on the network) gets a token realm naming the forwarded https host,
and the server's own address. In-process: the admin's login behind an https proxy passes its
CSRF check without CROW_CSRF_TRUSTED_ORIGINS; the client's address is the one the proxy saw.
"""

import http.client
import ipaddress
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from crow import env, proxies
from tests.server import Server

PUBLIC = "registry.example.com"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC, "X-Forwarded-For": "203.0.113.9"}


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"CROW_TRUSTED_PROXIES": "127.0.0.1", "CROW_ALLOWED_HOSTS": f"127.0.0.1,{PUBLIC}"}


def realm(server: Server, source: str, headers: dict[str, str]) -> str:
    """The token realm of ``GET /v2/``'s challenge, asked from the loopback address ``source``."""
    host, port = server.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", "/v2/", headers=headers)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 401
    return re.search(r'realm="([^"]+)"', response.headers["WWW-Authenticate"]).group(1)


def test_it_names_the_forwarded_host_only_for_a_trusted_proxy(registry_server: Server) -> None:
    assert realm(registry_server, "127.0.0.1", FORWARDED) == f"https://{PUBLIC}/token"
    assert realm(registry_server, "127.0.0.2", FORWARDED) == f"http://{registry_server.host}/token"
    assert realm(registry_server, "127.0.0.1", {}) == f"http://{registry_server.host}/token"


def test_it_answers_400_for_a_forwarded_host_not_allowed(registry_server: Server) -> None:
    host, port = registry_server.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/v2/", headers={**FORWARDED, "X-Forwarded-Host": "evil.example"})
        assert connection.getresponse().status == 400
    finally:
        connection.close()


@pytest.fixture
def behind_proxy(settings) -> None:
    settings.CROW_TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)
    settings.ALLOWED_HOSTS = ["crow", PUBLIC]


def admin_login(client: Client, remote_addr: str) -> int:
    """POST the admin's login form as a browser on https://PUBLIC would, via a proxy at ``remote_addr``."""
    headers = {
        "HTTP_HOST": "crow",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_HOST": PUBLIC,
        "HTTP_ORIGIN": f"https://{PUBLIC}",
        "REMOTE_ADDR": remote_addr,
    }
    client.get("/admin/login/", **headers)
    response = client.post(
        "/admin/login/?next=/admin/",
        {
            "username": "boss",
            "password": "a long passphrase",
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
        **headers,
    )
    return response.status_code


@pytest.mark.django_db
def test_the_admin_logs_in_through_an_https_proxy(behind_proxy: None) -> None:
    get_user_model().objects.create_superuser("boss", password="a long passphrase")
    assert admin_login(Client(enforce_csrf_checks=True), "10.1.2.3") == 302
    assert admin_login(Client(enforce_csrf_checks=True), "192.0.2.1") == 403  # not the proxy: CSRF refuses


def test_it_takes_the_client_address_the_proxy_saw(behind_proxy: None) -> None:
    meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.9, 10.0.0.1"}
    proxies.apply(meta)
    assert meta["REMOTE_ADDR"] == "203.0.113.9"  # 198.51.100.1 is what the client claimed

    untrusted = {"REMOTE_ADDR": "203.0.113.50", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    proxies.apply(untrusted)
    assert untrusted["REMOTE_ADDR"] == "203.0.113.50"


def test_it_trusts_nobody_by_default(settings) -> None:
    settings.CROW_TRUSTED_PROXIES = ()
    meta = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": PUBLIC}
    proxies.apply(meta)
    assert "wsgi.url_scheme" not in meta and "HTTP_HOST" not in meta


def test_it_refuses_a_bad_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("CROW_TRUSTED_PROXIES", "10.0.0.0/8, proxy.example")
    with pytest.raises(ImproperlyConfigured, match="CROW_TRUSTED_PROXIES must list addresses or CIDRs"):
        env.networks("CROW_TRUSTED_PROXIES")


def test_a_mapped_ipv6_peer_is_its_ipv4_address(behind_proxy: None) -> None:
    assert proxies.trusted("::ffff:10.9.8.7")
    assert not proxies.trusted("::ffff:192.0.2.1")
    assert not proxies.trusted("not an address")
