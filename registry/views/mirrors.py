"""What the manifest and blob views ask of the pull-through cache (``registry.mirror``) about a request."""

from django.conf import settings
from django.http import HttpRequest

from registry.auth.access import identity_of
from registry.errors import RegistryError, unavailable
from registry.maintenance import readonly
from registry.mirror import routing
from registry.mirror.routing import Route

ANYONE = "anyone"
READ_ONLY_MISS = (
    "the registry is read-only for maintenance: what it has not mirrored yet is not fetched until it ends"
)


def route(name: str) -> Route | None:
    """The upstream that answers for repository ``name``, if the pull-through cache does."""
    return routing.serving(name)


def may_fetch(request: HttpRequest) -> bool:
    """Whether this caller may make CRoW fetch from an upstream (``CROW_MIRROR_FETCH``); nobody may
    while the registry is read-only: a fetch stores what it fetched."""
    if readonly.is_on():
        return False
    return settings.CROW_MIRROR_FETCH == ANYONE or not identity_of(request).anonymous


def missing(unknown: RegistryError) -> RegistryError:
    """What a mirrored repository answers for what it has not stored: ``unknown``, or while the
    registry is read-only (nothing was asked of the upstream) 503: the upstream may well have it."""
    if readonly.is_on():
        return unavailable(READ_ONLY_MISS)
    return unknown
