"""``GET /v2/``, and the answer for every /v2/ path that matches no route.

Routes are built from the reference grammar, so a malformed name, tag,
digest or upload id matches none of them; ``unmatched`` then names what is
wrong with the spec's error code instead of a bare 404 page.
"""

import re

from django.http import HttpRequest, HttpResponse

from registry import errors, references, responses
from registry.endpoint import endpoint
from registry.errors import RegistryError


def version_check(request: HttpRequest) -> HttpResponse:
    return responses.json_body({}, head=request.method == "HEAD")


# Each endpoint's shape with permissive parts: (pattern, which parts to check).
_SHAPES = [
    re.compile(r"^(?P<name>.+)/manifests/(?P<reference>[^/]*)$"),
    re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]*)$"),
    re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]*)$"),
    re.compile(r"^(?P<name>.+)/referrers/(?P<digest>[^/]*)$"),
    re.compile(r"^(?P<name>.+)/tags/list$"),
]


def diagnose(path: str) -> RegistryError:
    for shape in _SHAPES:
        match = shape.match(path)
        if match is None:
            continue
        parts = match.groupdict()
        if not references.is_name(parts["name"]):
            return RegistryError(errors.NAME_INVALID, detail={"name": parts["name"]})
        if "reference" in parts:
            return _bad_reference(parts["reference"])
        if "digest" in parts:
            return RegistryError(
                errors.DIGEST_INVALID, "invalid or unsupported digest", detail={"digest": parts["digest"]}
            )
        if "upload_id" in parts:
            return RegistryError(errors.BLOB_UPLOAD_UNKNOWN, detail={"upload": parts["upload_id"]})
    return RegistryError(errors.UNSUPPORTED, "no such endpoint", status=404)


def _bad_reference(reference: str) -> RegistryError:
    if ":" in reference:
        return RegistryError(
            errors.DIGEST_INVALID, "invalid or unsupported digest", detail={"digest": reference}
        )
    return RegistryError(errors.TAG_INVALID, detail={"tag": reference})


def _unmatched(request: HttpRequest, path: str) -> HttpResponse:
    raise diagnose(path)


version = endpoint(GET=version_check, HEAD=version_check)
unmatched = endpoint(**{method: _unmatched for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")})
