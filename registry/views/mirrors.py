"""What the manifest and blob views ask of the pull-through cache (``registry.mirror``) about a request."""

from django.conf import settings
from django.http import HttpRequest

from registry.auth.access import identity_of
from registry.mirror import routing
from registry.mirror.routing import Route

ANYONE = "anyone"


def route(name: str) -> Route | None:
    """The upstream that answers for repository ``name``, if the pull-through cache does."""
    return routing.serving(name)


def may_fetch(request: HttpRequest) -> bool:
    """Whether this caller may make CRoW fetch from an upstream (``CROW_MIRROR_FETCH``)."""
    return settings.CROW_MIRROR_FETCH == ANYONE or not identity_of(request).anonymous
