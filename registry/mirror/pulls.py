"""Manifests of mirrored repositories: served from what is stored, fetched from the upstream when needed.

- By digest: a hit never asks the upstream. A miss fetches the manifest, which
  must hash to the digest asked for, and stores it untagged (an index's
  children arrive this way, when clients ask for them).
- By tag: a hit is served as it is while the tag is trusted
  (``Upstream.tag_trust_seconds`` since it was last fetched or confirmed,
  ``CheckedTag``); after that the upstream is asked for the tag's digest (a
  HEAD), and a digest that moved is fetched and the tag moved to it. An
  upstream that is down, rate-limits, refuses or lost the tag does not stop the
  stored manifest from being served: it is logged and counted
  (``crow_mirror_stale_served``), and asked again at the next pull. (A tag
  deleted upstream stays served here until an operator deletes it: CRoW
  cannot tell a deleted tag from a passing 404.)
- A miss by tag fetches the manifest; a ``Docker-Content-Digest`` the upstream
  sends must be the digest of the bytes it sent.

A fetched manifest is stored through the push path (``registry.pushes``) with
every absent reference kept (``registry.sparse.ALL``): its layers arrive when
clients ask for them (``registry.mirror.blobs``). The audit log (and webhooks)
see a ``push`` by ``system:mirror:<prefix>``, from the address of the client
whose pull caused it. A miss while the upstream
is down answers 503 (429 when it rate-limits) with ``Retry-After``: the
image may well exist, so "unknown" (404) would be a lie that clients and CI
logs take at its word; an upstream 404 is the client's 404.
``may_fetch`` False (``CROW_MIRROR_FETCH=authenticated`` and an anonymous
caller): only what is stored is served, never re-validated.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from registry import errors, manifests, metrics, pushes, sparse
from registry.db import manifests as manifest_rows
from registry.db import repositories
from registry.db.manifests import ServedManifest
from registry.errors import RegistryError
from registry.events import audit
from registry.mirror import upstream, usage
from registry.mirror.models import CheckedTag, MirroredRepository
from registry.mirror.routing import Route
from registry.references import Reference

log = logging.getLogger(__name__)


def served(route: Route, ref: Reference, content: bool, may_fetch: bool) -> ServedManifest | None:
    """The manifest ``ref`` names in the mirrored repository (None if neither CRoW nor upstream has it)."""
    if ref.digest is not None:
        found = manifest_rows.served(route.local, digest=ref.digest, content=content)
        if found is None and may_fetch:
            found = _fetched(route, ref.digest, None)
    else:
        found = manifest_rows.served(route.local, tag=ref.tag, content=content)
        if found is None and may_fetch:
            found = _fetched(route, ref.tag, ref.tag)
        elif found is not None and may_fetch and _untrusted(route, ref.tag):
            found = _revalidated(route, ref.tag, found)
    if found is not None:
        usage.record_pull_of(route.local)
    return found


def _untrusted(route: Route, tag: str) -> bool:
    checked = (
        CheckedTag.objects.filter(repository__name=route.local, tag=tag)
        .values_list("checked", flat=True)
        .first()
    )
    return checked is None or timezone.now() - checked >= timedelta(seconds=route.upstream.tag_trust_seconds)


def _revalidated(route: Route, tag: str, stored: ServedManifest) -> ServedManifest:
    """The tag's manifest after asking the upstream where it points; ``stored`` if it cannot tell."""
    client = upstream.Client(route.upstream, route.remote)
    try:
        digest = client.manifest_digest(tag)
        if digest == stored.digest:
            _checked(route, tag)
            return stored
        # Moved: the new manifest, tagged; if the tag went meanwhile upstream, what is stored.
        return _fetched(route, tag, tag, client) or stored
    except (upstream.UpstreamError, RegistryError) as exc:
        log.warning(
            "serving %s:%s as stored (%s), past its trust period: %s", route.local, tag, stored.digest, exc
        )
        metrics.mirror_stale_served.labels(route.upstream.prefix).inc()
        return stored


def _fetched(
    route: Route, reference: str, tag: str | None, client: upstream.Client | None = None
) -> ServedManifest | None:
    """Fetch manifest ``reference`` (a tag or a digest), verify and store it (tagged ``tag``)."""
    client = client or upstream.Client(route.upstream, route.remote)
    try:
        fetched = client.manifest(reference)
    except upstream.NotFound:
        return None
    except upstream.UpstreamError as exc:
        log.warning("could not fetch %s:%s: %s", route.local, reference, exc)
        raise exc.as_registry_error() from exc
    expected = reference if tag is None else fetched.digest
    algorithm = expected.split(":")[0] if expected and ":" in expected else "sha256"
    digest = manifests.digest_of(fetched.content, algorithm)
    if expected is not None and expected != digest:
        raise _bad_upstream(route, f"sent a manifest whose digest is {digest}, not {expected}")
    try:
        parsed = manifests.parse(fetched.content, fetched.media_type or None)
        with audit.acting(audit.Actor(route.actor, audit.current().address)):
            repository_id = pushes.store_manifest(
                route.local, digest, fetched.content, parsed, tag, sparse.ALL
            )
    except RegistryError as exc:
        if exc.error is errors.MANIFEST_INVALID:
            raise _bad_upstream(route, f"sent a manifest CRoW cannot store: {exc.message}") from exc
        raise
    if tag is not None:
        _checked(route, tag, repository_id)
    else:
        MirroredRepository.objects.update_or_create(
            repository_id=repository_id,
            defaults={"upstream_id": route.upstream.id, "last_synced": timezone.now()},
        )
    log.info("fetched %s@%s from upstream %s", route.local, digest, route.upstream.prefix)
    return ServedManifest(parsed.media_type, digest, len(fetched.content), fetched.content)


def _checked(route: Route, tag: str, repository_id: int | None = None) -> None:
    """The tag is trusted again from now (the upstream confirmed or sent it)."""
    repository_id = repository_id or repositories.id_of(route.local)
    if repository_id is None:  # deleted meanwhile
        return
    now = timezone.now()
    CheckedTag.objects.update_or_create(repository_id=repository_id, tag=tag, defaults={"checked": now})
    MirroredRepository.objects.update_or_create(
        repository_id=repository_id, defaults={"upstream_id": route.upstream.id, "last_synced": now}
    )


def _bad_upstream(route: Route, what: str) -> RegistryError:
    log.warning("upstream %s %s (for %s)", route.upstream.prefix, what, route.local)
    return RegistryError(errors.UNKNOWN, f"upstream {route.upstream.prefix} {what}", status=502)
