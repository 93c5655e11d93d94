"""Manifests: ``GET``/``HEAD``/``PUT``/``DELETE /v2/<name>/manifests/<reference>``."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse

from registry import errors, etags, hotpath, manifests, mediatypes, pushpath, responses, sparse
from registry.bodies import Body
from registry.endpoint import endpoint
from registry.errors import RegistryError
from registry.manifests import ParsedManifest
from registry.models import Manifest, Repository, Tag
from registry.pushpath import Linked
from registry.references import Reference


def get_manifest(request: HttpRequest, name: str, reference: str) -> HttpResponse:
    head = request.method == "HEAD"
    ref = Reference.parse(reference)
    manifest = hotpath.manifest(name, tag=ref.tag, digest=ref.digest, content=not head)
    if manifest is None:
        raise _unknown(name, ref)
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
    try:
        _store(name, digest, content, parsed, ref.tag)
    except IntegrityError as exc:
        # A blob or child manifest went (garbage collection, a delete) between the
        # check and the commit: the database's foreign keys refused the reference.
        raise RegistryError(
            errors.MANIFEST_BLOB_UNKNOWN, "a referenced blob or manifest was deleted meanwhile; push it again"
        ) from exc
    return responses.manifest_created(name, digest, parsed.subject)


def delete_manifest(request: HttpRequest, name: str, reference: str) -> HttpResponse:
    """Delete a tag (by name) or a manifest and every tag on it (by digest)."""
    if not settings.CROW_DELETE_ENABLED:
        raise RegistryError(errors.UNSUPPORTED, "deletes are disabled on this registry")
    ref = Reference.parse(reference)
    if ref.tag:
        deleted, _ = Tag.objects.filter(repository__name=name, name=ref.tag).delete()
    else:
        deleted, _ = Manifest.objects.filter(repository__name=name, digest=ref.digest).delete()
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


def _store(name: str, digest: str, content: bytes, parsed: ParsedManifest, tag: str | None) -> None:
    """The manifest, its references and its tag, all or nothing."""
    with transaction.atomic():
        repository_id = pushpath.repository_id(name) or pushpath.create_repository(name)
        if repository_id is None:  # created and deleted again by an operator, in between
            raise IntegrityError("the repository was deleted meanwhile")
        blobs = pushpath.linked_blobs(repository_id, parsed.blobs)
        children = pushpath.manifests_in(repository_id, parsed.children)
        absent = _check_references(parsed, blobs, children)
        manifest_id = pushpath.insert_manifest(repository_id, digest, content, parsed)
        if manifest_id is None:  # it existed, and garbage collection deleted it since the insert
            raise IntegrityError("the manifest was deleted meanwhile")
        blob_ids = [blob.id for blob in blobs]
        pushpath.link_manifest(manifest_id, blob_ids, [child.id for child in children])
        if absent:
            sparse.record(manifest_id, absent)
        sparse.resolve(repository_id, digest, manifest_id)  # indexes pushed before it, if any
        # Linked already; linked again so that a link that gc removed meanwhile is back at commit.
        pushpath.link_blobs(repository_id, blob_ids)
        if tag:
            pushpath.point_tag(repository_id, tag, manifest_id)


def _check_references(parsed: ParsedManifest, blobs: list[Linked], children: list[Linked]) -> sparse.Absent:
    """What the manifest may reference without the repository having it (``CROW_SPARSE_MANIFESTS``)."""
    present_blobs, present_children = {blob.digest for blob in blobs}, {child.digest for child in children}
    absent = sparse.check(parsed, present_blobs, present_children, settings.CROW_SPARSE_MANIFESTS)
    for blob in blobs:
        if blob.size != parsed.blobs[blob.digest]:
            raise RegistryError(
                errors.MANIFEST_INVALID,
                f"the manifest says {blob.digest} has {parsed.blobs[blob.digest]} bytes, it has {blob.size}",
                detail={"digest": blob.digest, "size": blob.size},
            )
    return absent


def _check_accept(request: HttpRequest, media_type: str) -> None:
    """An index is served only to a client that says it takes one; other manifests always."""
    if media_type not in mediatypes.INDEXES:
        return
    accepted = {part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")}
    accepted.discard("")
    if not accepted or accepted & {media_type, "*/*", "application/*"}:
        return
    raise RegistryError(
        errors.MANIFEST_UNKNOWN,
        f"the manifest is an index ({media_type}), which the Accept header does not include",
        detail={"mediaType": media_type},
    )


def _unknown(name: str, ref: Reference) -> RegistryError:
    if not Repository.objects.filter(name=name).exists():
        return RegistryError(errors.NAME_UNKNOWN, detail={"name": name})
    return RegistryError(errors.MANIFEST_UNKNOWN, detail={"reference": str(ref)})


manifest = endpoint(GET=get_manifest, HEAD=get_manifest, PUT=put_manifest, DELETE=delete_manifest)
