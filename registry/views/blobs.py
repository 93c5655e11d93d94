"""Blobs: ``GET``/``HEAD``/``DELETE /v2/<name>/blobs/<digest>``."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from registry import deletions, errors, etags, responses
from registry.db import blobs
from registry.db.blobs import BlobRow
from registry.endpoint import endpoint
from registry.errors import RegistryError
from registry.mirror import blobs as mirror_blobs
from registry.ranges import byte_range
from registry.storage import Stream, blob_store
from registry.views import mirrors


def _linked_blob(name: str, digest: str) -> BlobRow:
    blob = blobs.linked(name, digest)
    if blob is None:
        raise errors.blob_unknown(digest)
    return blob


def head_blob(request: HttpRequest, name: str, digest: str) -> HttpResponse:
    route = mirrors.route(name)
    if route is None:
        size = _linked_blob(name, digest).size
    elif (size := mirror_blobs.size(route, digest, mirrors.may_fetch(request))) is None:
        raise mirrors.missing(errors.blob_unknown(digest))
    if etags.held(request, digest):
        return responses.not_modified(digest, size, immutable=True)
    return responses.blob_head(digest, size)


def get_blob(request: HttpRequest, name: str, digest: str) -> HttpResponse:
    route = mirrors.route(name)
    if route is None:
        blob = _linked_blob(name, digest)
    else:
        found = mirror_blobs.fetch(route, digest, mirrors.may_fetch(request))
        if found is None:
            raise mirrors.missing(errors.blob_unknown(digest))
        if isinstance(found, mirror_blobs.Fetching):  # on its way from the upstream: the whole of it
            download = Stream(found.chunks, found.length)
            return responses.blob_download(download, digest, 0, found.length, found.length, partial=False)
        blob = found
    if etags.held(request, digest):
        return responses.not_modified(digest, blob.size, immutable=True)
    wanted = byte_range(request.headers.get("Range"), blob.size)
    download = blob_store().download(blob.key, digest, wanted.start, wanted.length)
    return responses.blob_download(download, digest, wanted.start, wanted.length, blob.size, wanted.partial)


def delete_blob(request: HttpRequest, name: str, digest: str) -> HttpResponse:
    """Unlink the blob from this repository; its bytes stay while any repository uses them (gc frees them)."""
    if not settings.CROW_DELETE_ENABLED:
        raise RegistryError(errors.UNSUPPORTED, "deletes are disabled on this registry")
    if not deletions.delete_blob(name, digest):
        raise errors.blob_unknown(digest)
    return responses.empty(202)


blob = endpoint(GET=get_blob, HEAD=head_blob, DELETE=delete_blob)
