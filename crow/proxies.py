"""Trusted reverse proxies (``CROW_TRUSTED_PROXIES``): who may say what URL the client used, and who it is.

Behind Caddy or nginx the connection comes from the proxy, over plain HTTP, to an internal host
name. The proxy says what the client asked in ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and
``X-Forwarded-For``; anyone else could send the same headers, so they are believed only from a
peer whose address is in ``CROW_TRUSTED_PROXIES`` (comma-separated addresses or CIDRs; default:
nobody). From such a peer, ``ForwardedHeaders`` rewrites the request before anything reads it:
its scheme (``request.is_secure()``, the admin's CSRF checks), its host (the token realm built
by ``build_absolute_uri``; still checked against ``CROW_ALLOWED_HOSTS``) and ``REMOTE_ADDR``.

``client_address`` is the one definition of who the client is, for everything that names it: login
throttling, the audit log and warnings (``registry.auth.credentials.client_address`` reads the
``REMOTE_ADDR`` rewritten here), the access log and ``/metrics``' loopback rule (``crow.recording``,
which sees the request before Django). It is the connection's address, or, from a trusted proxy, the
right-most entry of ``X-Forwarded-For`` that is not itself a trusted proxy (each proxy appends the
address it saw; entries left of that are whatever the client sent). ``CROW_CLIENT_ADDRESS_HEADER``
names another header for it (a proxy that writes ``X-Real-IP`` or ``CF-Connecting-IP``), believed
from trusted proxies only like ``X-Forwarded-For``.
"""

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_FOR = "X-Forwarded-For"


def trusted(remote_addr: str) -> bool:
    """Whether the peer at ``remote_addr`` is one of the configured proxies."""
    networks: tuple[Network, ...] = settings.CROW_TRUSTED_PROXIES
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(remote_addr.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _last(value: str) -> str:
    """The last entry of a comma-separated header: the one the nearest proxy wrote."""
    return value.rsplit(",", 1)[-1].strip()


def address_header() -> str:
    """The header in which trusted proxies name the client."""
    return settings.CROW_CLIENT_ADDRESS_HEADER or FORWARDED_FOR


def client_address(peer: str, forwarded: str) -> str:
    """The client's address: ``peer`` (the connection's), or, if ``peer`` is a trusted proxy, the
    right-most entry of ``forwarded`` (the address header) that is not a trusted proxy; all of them
    trusted: the farthest; an entry that is no IP address: ``peer``."""
    if not forwarded or not trusted(peer):
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    chosen = next((hop for hop in reversed(hops) if not trusted(hop)), hops[0] if hops else peer)
    # Not an address (a proxy that passed on what the client wrote): the proxy's own, not the text.
    return chosen if _is_address(chosen) else peer


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def apply(meta: dict) -> None:
    """Rewrite a request's ``META`` from its forwarding headers, if its peer is a trusted proxy."""
    peer = meta.get("REMOTE_ADDR", "")
    if not trusted(peer):
        return
    proto = _last(meta.get("HTTP_X_FORWARDED_PROTO", "")).lower()
    if proto in ("http", "https"):
        meta["wsgi.url_scheme"] = proto
    host = _last(meta.get("HTTP_X_FORWARDED_HOST", ""))
    if host:
        meta["HTTP_HOST"] = host
    meta["REMOTE_ADDR"] = client_address(peer, meta.get(_meta_key(address_header()), ""))


class ForwardedHeaders:
    """Middleware, first of all: a trusted proxy's forwarding headers become the request's own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        apply(request.META)
        return self.get_response(request)
