"""Responses and the protocol headers they carry, so no view assembles them by hand."""

import json
from typing import Any
from urllib.parse import urlencode

from django.http import FileResponse, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase

from registry import etags, mediatypes
from registry.errors import RegistryError, UploadPosition
from registry.storage import Download, LocalFile, Redirect


def error(exc: RegistryError, head: bool = False) -> HttpResponse:
    body = b"" if head else json.dumps(exc.as_json()).encode()
    response = HttpResponse(body, status=exc.status, content_type=mediatypes.JSON)
    for header, value in exc.headers.items():
        response[header] = value
    if exc.upload is not None:
        for header, value in _upload_headers(exc.upload).items():
            response[header] = value
    return response


def json_body(
    data: Any, content_type: str = mediatypes.JSON, head: bool = False, status: int = 200
) -> HttpResponse:
    content = json.dumps(data, separators=(",", ":")).encode()
    response = HttpResponse(b"" if head else content, status=status, content_type=content_type)
    response["Content-Length"] = str(len(content))
    return response


def empty(status: int, **headers: str) -> HttpResponse:
    response = HttpResponse(b"", status=status)
    del response["Content-Type"]
    response["Content-Length"] = "0"
    for header, value in headers.items():
        response[header.replace("_", "-")] = value
    return response


def blob_location(name: str, digest: str) -> str:
    return f"/v2/{name}/blobs/{digest}"


def upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def upload_range(offset: int) -> str:
    """The ``Range`` of bytes received so far; ``0-0`` for none, as the reference registry says."""
    return f"0-{max(offset - 1, 0)}"


def upload_progress(name: str, upload_id: str, offset: int, status: int = 202) -> HttpResponse:
    """Where an upload stands: 202 after POST/PATCH, 204 for a status GET."""
    return empty(status, **_upload_headers(UploadPosition(name, upload_id, offset)))


def _upload_headers(position: UploadPosition) -> dict[str, str]:
    headers = {
        "Location": upload_location(position.name, position.upload_id),
        "Range": upload_range(position.offset),
        "Docker-Upload-UUID": position.upload_id,
    }
    if position.retry_after is not None:
        headers["Retry-After"] = str(position.retry_after)
    return headers


def upload_started(name: str, upload_id: str, chunk_min_length: int) -> HttpResponse:
    response = upload_progress(name, upload_id, 0)
    response["OCI-Chunk-Min-Length"] = str(chunk_min_length)
    return response


def blob_created(name: str, digest: str) -> HttpResponse:
    return empty(201, Location=blob_location(name, digest), Docker_Content_Digest=digest)


def blob_head(digest: str, size: int) -> HttpResponse:
    response = empty(200, Docker_Content_Digest=digest, Accept_Ranges="bytes")
    response["Content-Length"] = str(size)
    response["Content-Type"] = mediatypes.OCTET_STREAM
    _validators(response, digest, immutable=True)
    return response


def not_modified(digest: str, size: int, immutable: bool) -> HttpResponse:
    """``304``: the client's copy, named by its ``If-None-Match``, is this digest's bytes.

    Its ``Content-Length`` is the 200's, as RFC 9110 §8.6 requires of one (there is no body).
    """
    response = empty(304, Docker_Content_Digest=digest)
    response["Content-Length"] = str(size)
    _validators(response, digest, immutable)
    return response


def blob_download(
    download: Download, digest: str, start: int, length: int, size: int, partial: bool
) -> HttpResponseBase:
    """The blob's bytes: a file the server can ``sendfile``, a proxied stream, or a redirect to the store."""
    response: HttpResponseBase
    if isinstance(download, Redirect):
        response = HttpResponseRedirect(download.url)
        response.status_code = 307
    else:
        if isinstance(download, LocalFile):
            response = FileResponse(
                _BoundedFile(download.file, download.length), content_type=mediatypes.OCTET_STREAM
            )
        else:
            response = StreamingHttpResponse(download.chunks, content_type=mediatypes.OCTET_STREAM)
        response.status_code = 206 if partial else 200
        response["Content-Length"] = str(length)
        if partial:
            response["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        # Not on a redirect: the presigned URL it names expires long before a year.
        _validators(response, digest, immutable=True)
    response["Docker-Content-Digest"] = digest
    response["Accept-Ranges"] = "bytes"
    return response


def manifest(
    content: bytes, media_type: str, digest: str, head: bool = False, immutable: bool = False
) -> HttpResponse:
    """A manifest; ``immutable`` when asked for by digest (by tag, the tag can move)."""
    response = HttpResponse(b"" if head else content, content_type=media_type)
    response["Content-Length"] = str(len(content))
    response["Docker-Content-Digest"] = digest
    _validators(response, digest, immutable)
    return response


def manifest_created(name: str, digest: str, subject: str) -> HttpResponse:
    response = empty(201, Location=f"/v2/{name}/manifests/{digest}", Docker_Content_Digest=digest)
    if subject:
        response["OCI-Subject"] = subject
    return response


def next_page_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


def _validators(response: HttpResponseBase, digest: str, immutable: bool) -> None:
    response["ETag"] = etags.etag(digest)
    if immutable:
        response["Cache-Control"] = etags.IMMUTABLE


class _BoundedFile:
    """A file seen from its current position for ``length`` bytes.

    gunicorn's ``sendfile`` starts at the descriptor's position and sends
    ``Content-Length`` bytes; elsewhere ``read`` stops at the bound, so a Range
    response never leaks the rest of the file.
    """

    def __init__(self, file: Any, length: int) -> None:
        self._file = file
        self._left = length

    def fileno(self) -> int:
        return self._file.fileno()

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        if size < 0 or size > self._left:
            size = self._left
        data = self._file.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()
