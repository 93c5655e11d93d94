"""Which upstream a repository name is read from: ``route(name)``, cached in the process.

A name under an enabled upstream's prefix (the longest prefix wins) whose rest
the upstream's ``repositories`` patterns allow is mirrored: ``docker.io/library/alpine``
is ``library/alpine`` at the upstream with prefix ``docker.io``. Docker Hub
(an upstream whose URL's host is ``docker.io``, ``registry-1.docker.io`` or
``index.docker.io``) keeps its official images under ``library/``: a
single-component name is read there (``docker.io/alpine`` → ``library/alpine``).

``CROW_MIRROR_ROOT`` (an upstream's prefix, e.g. ``docker.io``) makes CRoW a
Docker daemon mirror (``registry-mirrors`` in ``daemon.json``, whose clients
ask for ``library/alpine`` without a prefix): a name under no prefix is routed
to that upstream with ``root=True`` and stored as ``<prefix>/<name>``; the
views read a local repository of that very name first, and route only when
there is none (so ``route`` itself never queries per request). Reads only:
pushes of such names go to local repositories as before.

The upstreams are read once and kept in the process: dropped when an
``Upstream`` row is saved or deleted in this process (signals), when another
process changes one (PostgreSQL: the table's trigger notifies ``crow_changes``
with ``''``, which ``crow.notices`` hears and passes to ``invalidate``), and
in any case after ``CROW_MIRROR_ROUTES_TTL`` seconds (SQLite, processes without
a listener, writes that bypass both).
"""

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from registry import patterns
from registry.db import repositories
from registry.mirror.models import Upstream

DOCKER_HUB_HOSTS = frozenset({"docker.io", "registry-1.docker.io", "index.docker.io"})
OFFICIAL_NAMESPACE = "library"


@dataclass(frozen=True)
class UpstreamConfig:
    """An ``Upstream`` row as the request path needs it (a snapshot: rows change under it)."""

    id: int
    prefix: str
    url: str
    username: str
    password: str
    tag_trust_seconds: int
    repositories: tuple[str, ...]

    @property
    def is_docker_hub(self) -> bool:
        return (urlsplit(self.url).hostname or "") in DOCKER_HUB_HOSTS

    def __repr__(self) -> str:  # never the password, wherever a route is logged
        return f"UpstreamConfig({self.prefix!r} -> {self.url!r})"


@dataclass(frozen=True)
class Route:
    """Where repository ``name`` (as asked) is read from: ``remote`` at ``upstream``, stored as ``local``."""

    upstream: UpstreamConfig
    remote: str
    local: str
    root: bool = False

    @property
    def actor(self) -> str:
        """Who the audit log says stored what the upstream sent (not the client whose pull caused it)."""
        return f"system:mirror:{self.upstream.prefix}"


_lock = threading.Lock()
_upstreams: tuple[UpstreamConfig, ...] | None = None
_loaded_at = 0.0


class NotLoaded(Exception):
    """``route(..., cached_only=True)`` when the upstreams are to be read again: a query is due."""


def route(name: str, cached_only: bool = False) -> Route | None:
    """The upstream ``name`` is mirrored from, or None for a local repository (no query when cached).

    ``cached_only`` (the fast path, on the event loop): raise ``NotLoaded`` instead of querying.
    """
    upstreams = _current(load=not cached_only)
    upstream = _by_prefix(upstreams, name)
    if upstream is not None:
        remote = _remote(upstream, name[len(upstream.prefix) + 1 :])
        return Route(upstream, remote, name) if _allowed(upstream, remote) else None
    root = _root(upstreams)
    if root is None:
        return None
    remote = _remote(root, name)
    return Route(root, remote, f"{root.prefix}/{remote}", root=True) if _allowed(root, remote) else None


def serving(name: str) -> Route | None:
    """``route(name)``, unless it is a ``CROW_MIRROR_ROOT`` route and a local repository has the name
    (then that repository answers, as if no upstream were configured)."""
    found = route(name)
    if found is None or not found.root:
        return found
    return None if repositories.id_of(name) is not None else found


def is_mirrored(name: str) -> bool:
    """Whether repository ``name`` lies under an enabled upstream's prefix (its content comes from
    there; pushes into it are refused). Names served through ``CROW_MIRROR_ROOT`` are not: they are
    stored under the prefix."""
    return _by_prefix(_current(), name) is not None


def upstream_of(name: str) -> UpstreamConfig | None:
    """The enabled upstream whose prefix ``name`` lies under, whatever its patterns allow."""
    return _by_prefix(_current(), name)


def invalidate(*args, **kwargs) -> None:
    """Forget the upstreams: the next ``route`` reads them again (a signal receiver too)."""
    global _upstreams
    _upstreams = None


def _current(load: bool = True) -> tuple[UpstreamConfig, ...]:
    global _upstreams, _loaded_at
    upstreams = _upstreams
    if upstreams is not None and time.monotonic() - _loaded_at < settings.CROW_MIRROR_ROUTES_TTL:
        return upstreams
    if not load:
        raise NotLoaded
    with _lock:
        if _upstreams is None or time.monotonic() - _loaded_at >= settings.CROW_MIRROR_ROUTES_TTL:
            loaded_at = time.monotonic()
            _upstreams = _load()
            _loaded_at = loaded_at
        return _upstreams


def _load() -> tuple[UpstreamConfig, ...]:
    rows = Upstream.objects.filter(enabled=True).order_by("-prefix")
    return tuple(
        UpstreamConfig(
            id=row.id,
            prefix=row.prefix,
            url=row.url.rstrip("/"),
            username=row.username,
            password=row.password,
            tag_trust_seconds=row.tag_trust_seconds,
            repositories=tuple(patterns.split(row.repositories)),
        )
        for row in rows
    )


def _by_prefix(upstreams: tuple[UpstreamConfig, ...], name: str) -> UpstreamConfig | None:
    """The upstream with the longest prefix that ``name`` lies under (a prefix is never a name itself)."""
    best = None
    for upstream in upstreams:
        if name.startswith(upstream.prefix + "/") and (
            best is None or len(upstream.prefix) > len(best.prefix)
        ):
            best = upstream
    return best


def _root(upstreams: tuple[UpstreamConfig, ...]) -> UpstreamConfig | None:
    prefix = settings.CROW_MIRROR_ROOT
    return next((upstream for upstream in upstreams if upstream.prefix == prefix), None) if prefix else None


def _remote(upstream: UpstreamConfig, rest: str) -> str:
    if upstream.is_docker_hub and "/" not in rest:
        return f"{OFFICIAL_NAMESPACE}/{rest}"
    return rest


def _allowed(upstream: UpstreamConfig, remote: str) -> bool:
    return any(patterns.matches(pattern, remote) for pattern in upstream.repositories)


post_save.connect(invalidate, sender=Upstream, dispatch_uid="mirror-routes-saved")
post_delete.connect(invalidate, sender=Upstream, dispatch_uid="mirror-routes-deleted")
