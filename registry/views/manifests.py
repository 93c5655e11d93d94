"""Manifests: ``GET``/``HEAD``/``PUT``/``DELETE /v2/<name>/manifests/<reference>``."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from registry import deletions, errors, etags, manifests, mediatypes, pushes, responses
from registry.bodies import Body
from registry.db import manifests as manifest_rows
from registry.db import repositories
from registry.endpoint import endpoint
from registry.errors import RegistryError
from registry.mirror import pulls
from registry.references import Reference
from registry.views import mirrors


def get_manifest(request: HttpRequest, name: str, reference: str) -> HttpResponse:
    head = request.method == "HEAD"
    ref = Reference.parse(reference)
    route = mirrors.route(name)
    if route is None:
        manifest = manifest_rows.served(name, tag=ref.tag, digest=ref.digest, content=not head)
    else:
        manifest = pulls.served(route, ref, content=not head, may_fetch=mirrors.may_fetch(request))
    if manifest is None:
        unknown = _unknown(name if route is None else route.local, ref)
        raise unknown if route is None else mirrors.missing(unknown)
    _check_accept(request, manifest.media_type)
    immutable = ref.digest is not None
    if etags.held(request, manifest.digest):
        return responses.not_modified(manifest.digest, manifest.size, immutable)
    if head:
        response = responses.manifest(
            b"", manifest.media_type, manifest.digest, head=True, immutable=immutable
        )
        response["Content-Length"] = str(manifest.size)
        return response
    return responses.manifest(manifest.content, manifest.media_type, manifest.digest, immutable=immutable)


def put_manifest(request: HttpRequest, name: str, reference: str) -> HttpResponse:
    ref = Reference.parse(reference)
    content = _read_manifest(Body(request, settings.CROW_STREAM_BUFFER))
    algorithm = ref.digest.split(":")[0] if ref.digest else "sha256"
    digest = manifests.digest_of(content, algorithm)
    if ref.digest and ref.digest != digest:
        raise RegistryError(
            errors.DIGEST_INVALID,
            "the manifest's digest does not match the reference",
            detail={"reference": ref.digest, "computed": digest},
        )
    parsed = manifests.parse(content, request.META.get("CONTENT_TYPE"))
    pushes.store_manifest(name, digest, content, parsed, ref.tag)
    return responses.manifest_created(name, digest, parsed.subject)


def delete_manifest(request: HttpRequest, name: str, reference: str) -> HttpResponse:
    """Delete a tag (by name) or a manifest and every tag on it (by digest)."""
    if not settings.CROW_DELETE_ENABLED:
        raise RegistryError(errors.UNSUPPORTED, "deletes are disabled on this registry")
    ref = Reference.parse(reference)
    deleted = deletions.delete_tag(name, ref.tag) if ref.tag else deletions.delete_manifest(name, ref.digest)
    if not deleted:
        raise _unknown(name, ref)
    return responses.empty(202)


def _read_manifest(body: Body) -> bytes:
    limit = mediatypes.MAX_MANIFEST_SIZE
    too_large = RegistryError(
        errors.MANIFEST_INVALID,
        f"manifests are limited to {limit} bytes",
        detail={"limit": limit},
        status=413,
    )
    if body.length is not None and body.length > limit:
        raise too_large
    content = body.read_all(limit)
    if len(content) > limit:
        raise too_large
    return content


def _check_accept(request: HttpRequest, media_type: str) -> None:
    if mediatypes.served_to(media_type, request.headers.get("Accept", "")):
        return
    raise RegistryError(
        errors.MANIFEST_UNKNOWN,
        f"the manifest is an index ({media_type}), which the Accept header does not include",
        detail={"mediaType": media_type},
    )


def _unknown(name: str, ref: Reference) -> RegistryError:
    if repositories.id_of(name) is None:
        return RegistryError(errors.NAME_UNKNOWN, detail={"name": name})
    return RegistryError(errors.MANIFEST_UNKNOWN, detail={"reference": str(ref)})


manifest = endpoint(GET=get_manifest, HEAD=get_manifest, PUT=put_manifest, DELETE=delete_manifest)
