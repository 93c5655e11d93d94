"""``CROW_TRUSTED_PROXIES``: forwarding headers believed from the proxies named there, from nobody else.

On a real server trusting 127.0.0.1 only, the same request sent from 127.0.0.1 (the proxy) and
from 127.0.0.2 (anyone else on the network) gets a token realm naming the forwarded https host,
and the server's own address; login throttling, the audit log and the access log name one client,
the proxy's word for it from the proxy, the connection's address from anyone else. In-process:
the admin's login behind an https proxy passes its CSRF check without CROW_CSRF_TRUSTED_ORIGINS;
the client's address is the one the proxy saw.
"""

import base64
import http.client
import ipaddress
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from crow import env, proxies
from registry.events.models import LOGIN_FAILED, AuditEvent
from tests import accesslog
from tests.server import Server

PUBLIC = "registry.example.com"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC, "X-Forwarded-For": "203.0.113.9"}


FAILURES = 3  # failed logins of one account from one address before 429
CLIENT = "203.0.113.7"  # the address the proxy saw


@pytest.fixture
def server_env() -> dict[str, str]:
    return {
        "CROW_TRUSTED_PROXIES": "127.0.0.1",
        "CROW_ALLOWED_HOSTS": f"127.0.0.1,{PUBLIC}",
        "CROW_LOG_FORMAT": "json",
        "CROW_LOGIN_FAILURES": str(FAILURES),
    }


def send(server: Server, source: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    """``GET /v2/`` from the loopback address ``source`` (127.0.0.1 is the proxy, 127.0.0.2 anyone else)."""
    host, port = server.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", "/v2/", headers=headers)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    return response


def realm(server: Server, source: str, headers: dict[str, str]) -> str:
    """The token realm of ``GET /v2/``'s challenge, asked from the loopback address ``source``."""
    response = send(server, source, headers)
    assert response.status == 401
    return re.search(r'realm="([^"]+)"', response.headers["WWW-Authenticate"]).group(1)


def test_it_names_the_forwarded_host_only_for_a_trusted_proxy(registry_server: Server) -> None:
    assert realm(registry_server, "127.0.0.1", FORWARDED) == f"https://{PUBLIC}/token"
    assert realm(registry_server, "127.0.0.2", FORWARDED) == f"http://{registry_server.host}/token"
    assert realm(registry_server, "127.0.0.1", {}) == f"http://{registry_server.host}/token"


def test_throttling_the_audit_log_and_the_access_log_name_the_same_client(registry_server: Server) -> None:
    def login(source: str, forwarded_for: str, password: str, request_id: str) -> int:
        credentials = base64.b64encode(f"{registry_server.username}:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}", "X-Forwarded-For": forwarded_for}
        return send(registry_server, source, {**headers, "X-Request-ID": request_id}).status

    # From anyone but the proxy, X-Forwarded-For is the client's word: it changes nothing.
    assert login("127.0.0.2", CLIENT, "crow_wrong", "spoofed") == 401
    # Through the proxy, the address it appended counts, whatever the client wrote left of it.
    for attempt in range(FAILURES - 1):
        assert login("127.0.0.1", f"198.51.100.1, {CLIENT}", "crow_wrong", f"proxied-{attempt}") == 401
    # The spoofed failure was not counted against CLIENT: one failure short of the limit.
    assert login("127.0.0.1", CLIENT, registry_server.password, "allowed") == 200
    assert login("127.0.0.1", CLIENT, "crow_wrong", "last") == 401
    assert login("127.0.0.1", f"198.51.100.1, {CLIENT}", registry_server.password, "refused") == 429
    assert login("127.0.0.2", CLIENT, registry_server.password, "elsewhere") == 200

    failed = AuditEvent.objects.filter(action=LOGIN_FAILED).order_by("id")
    assert [event.address for event in failed] == ["127.0.0.2", *[CLIENT] * FAILURES]
    logged = {
        request_id: accesslog.access(registry_server.log, request_id)["client"]
        for request_id in ("spoofed", "proxied-0", "allowed", "last", "refused", "elsewhere")
    }
    assert logged == {
        "spoofed": "127.0.0.2",
        "proxied-0": CLIENT,
        "allowed": CLIENT,
        "last": CLIENT,
        "refused": CLIENT,
        "elsewhere": "127.0.0.2",
    }


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


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", "", "203.0.113.5"),
        ("203.0.113.5", "198.51.100.7", "203.0.113.5"),  # not from a trusted proxy: not believed
        ("10.1.2.3", "198.51.100.7", "198.51.100.7"),
        ("10.1.2.3", "192.0.2.1, 198.51.100.7", "198.51.100.7"),  # the left entry is the client's word
        ("10.1.2.3", "198.51.100.7, 10.9.9.9", "198.51.100.7"),  # through two trusted proxies
        ("10.1.2.3", "10.4.4.4, 10.9.9.9", "10.4.4.4"),  # all trusted: the farthest
        ("10.1.2.3", "not-an-address", "10.1.2.3"),  # words are no address: the proxy's own
        ("10.1.2.3", "198.51.100.7, " + "x" * 500, "10.1.2.3"),  # nor would they fit an audit row
        ("10.1.2.3", "[2001:db8::7]", "[2001:db8::7]"),
        ("10.1.2.3", " , ", "10.1.2.3"),
    ],
)
def test_the_client_address_honours_trusted_proxies_only(
    behind_proxy: None, peer: str, forwarded: str, client: str
) -> None:
    assert proxies.client_address(peer, forwarded) == client


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
