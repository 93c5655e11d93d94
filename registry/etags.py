"""Conditional reads: a blob's or manifest's digest names its bytes, so it is their entity tag.

A cache in front of the registry, or a client that kept what it pulled,
revalidates with ``If-None-Match`` and gets ``304 Not Modified`` without the
bytes. Content addressed by digest never changes, so it may be cached for a
year (``IMMUTABLE``); a manifest fetched by tag carries the tag but no lifetime,
since the tag can move.
"""

import re

from django.http import HttpRequest

# As the reference registry says it for blobs. Without "public", a shared cache stores
# no answer to a request with credentials (RFC 9111 §3.5): private registries stay private.
IMMUTABLE = "max-age=31536000"

_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


def etag(digest: str) -> str:
    return f'"{digest}"'


def held(request: HttpRequest, digest: str) -> bool:
    """Whether the client says it holds ``digest``'s bytes (a GET or HEAD then answers 304)."""
    return matches(request.headers.get("If-None-Match"), digest)


def matches(if_none_match: str | None, digest: str) -> bool:
    """Whether ``If-None-Match`` names ``digest`` (weak comparison, RFC 9110 §13.1.2), or is ``*``."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return digest in _ENTITY_TAG.findall(if_none_match)
