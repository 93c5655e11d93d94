"""Trusted reverse proxies (``CROW_TRUSTED_PROXIES``): who may say what URL the client used, and who it is.

Behind Caddy or nginx the connection comes from the proxy, over plain HTTP, to an internal host
name. The proxy says what the client asked in ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and
``X-Forwarded-For``; anyone else could send the same headers, so they are believed only from a
peer whose address is in ``CROW_TRUSTED_PROXIES`` (comma-separated addresses or CIDRs; default:
nobody). From such a peer, ``ForwardedHeaders`` rewrites the request before anything reads it:
its scheme (``request.is_secure()``, the admin's CSRF checks), its host (the token realm built
by ``build_absolute_uri``; still checked against ``CROW_ALLOWED_HOSTS``) and ``REMOTE_ADDR``
(login throttling and logs: the right-most ``X-Forwarded-For`` entry that is not itself a
trusted proxy, as each proxy appends the address it saw).
"""

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def client(forwarded_for: str, peer: str) -> str:
    """The client's address: the right-most ``X-Forwarded-For`` entry that is not a trusted proxy."""
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop
    return hops[0] if hops else peer


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
    forwarded_for = meta.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded_for:
        meta["REMOTE_ADDR"] = client(forwarded_for, peer)


class ForwardedHeaders:
    """Middleware, first of all: a trusted proxy's forwarding headers become the request's own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        apply(request.META)
        return self.get_response(request)
