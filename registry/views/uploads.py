"""Blob uploads: ``POST /v2/<name>/blobs/uploads/`` and ``/v2/<name>/blobs/uploads/<id>``.

Monolithic (POST then PUT, or one POST with ``digest``), chunked (PATCH with
``Content-Range``), streamed (PATCH without it), status, cancel, and
cross-repository mount, from repositories the caller may pull only.
"""

import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from registry import errors, references, responses, uploads
from registry.auth import permissions
from registry.auth.access import identity_of
from registry.bodies import Body
from registry.endpoint import endpoint
from registry.errors import RegistryError
from registry.models import Blob
from registry.storage import blob_store

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)$")


def start_upload(request: HttpRequest, name: str) -> HttpResponse:
    mount_digest = request.GET.get("mount")
    digest = request.GET.get("digest")
    for value in (mount_digest, digest):
        if value is not None:
            _require_digest(value)
    source = request.GET.get("from")
    if source is not None and not references.is_name(source):
        raise RegistryError(errors.NAME_INVALID, detail={"from": source})
    if mount_digest is not None:
        blob = _mount(request, name, mount_digest, source)
        if blob is not None:
            return responses.blob_created(name, blob.digest)
    upload, claim = uploads.start(name, claimed=digest is not None)
    if claim is not None:
        body = _body(request)
        blob = uploads.finish_new(upload, claim, body.chunks(), body.expected, digest)
        return responses.blob_created(name, blob.digest)
    chunk_min_length = settings.CROW_CHUNK_MIN_LENGTH or blob_store().preferred_chunk_size
    return responses.upload_started(name, upload.id.hex, chunk_min_length)


def _mount(request: HttpRequest, name: str, digest: str, source: str | None) -> Blob | None:
    """Link the blob from ``source``, or from any repository that has it, if the caller may pull there.

    Otherwise None, and a normal upload starts: a mount never tells what the caller cannot see.
    """
    caller = identity_of(request)
    if permissions.sees_everything(caller):
        return uploads.mount(name, digest, source)
    readable = permissions.pullable(caller)
    if source is None:
        source = readable.filter(blobs__digest=digest).values_list("name", flat=True).first()
    elif not readable.filter(name=source).exists():
        return None
    return uploads.mount(name, digest, source) if source is not None else None


def get_upload_status(request: HttpRequest, name: str, upload_id: str) -> HttpResponse:
    upload = uploads.find(name, upload_id)
    return responses.upload_progress(name, upload_id, upload.offset, status=204)


def patch_upload(request: HttpRequest, name: str, upload_id: str) -> HttpResponse:
    body = _body(request)
    upload = uploads.append(name, upload_id, body.chunks(), body.expected, _chunk_start(request, body))
    return responses.upload_progress(name, upload_id, upload.offset)


def finish_upload(request: HttpRequest, name: str, upload_id: str) -> HttpResponse:
    digest = request.GET.get("digest")
    if digest is None:
        raise RegistryError(
            errors.DIGEST_INVALID, "the digest query parameter is required to finish an upload"
        )
    _require_digest(digest)
    body = _body(request)
    start = _chunk_start(request, body)
    blob = uploads.finish(name, upload_id, body.chunks(), body.expected, start, digest)
    return responses.blob_created(name, blob.digest)


def cancel_upload(request: HttpRequest, name: str, upload_id: str) -> HttpResponse:
    uploads.cancel(uploads.find(name, upload_id))
    return responses.empty(204)


def _body(request: HttpRequest) -> Body:
    return Body(request, settings.CROW_STREAM_BUFFER)


def _require_digest(value: str) -> None:
    if not references.is_digest(value):
        raise RegistryError(errors.DIGEST_INVALID, "invalid or unsupported digest", detail={"digest": value})


def _chunk_start(request: HttpRequest, body: Body) -> int | None:
    """Where the chunk says it starts (``Content-Range``), checked against its length; None if unsaid."""
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    match = _CONTENT_RANGE.match(header.strip())
    if match is None:
        raise RegistryError(errors.BLOB_UPLOAD_INVALID, f"malformed Content-Range {header!r}", status=416)
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RegistryError(
            errors.BLOB_UPLOAD_INVALID, f"Content-Range {header!r} ends before it starts", status=416
        )
    if body.length is not None and body.length != end - start + 1:
        raise RegistryError(
            errors.SIZE_INVALID,
            f"Content-Range {header!r} covers {end - start + 1} bytes but Content-Length is {body.length}",
        )
    return start


uploads_collection = endpoint(POST=start_upload)
upload = endpoint(GET=get_upload_status, PATCH=patch_upload, PUT=finish_upload, DELETE=cancel_upload)
