"""``GET /v2/``, and the answer for every /v2/ path that matches no route.

Routes are built from the reference grammar, so a malformed name, tag,
digest or upload id matches none of them; ``unmatched`` then names what is
wrong with the spec's error code instead of a bare 404 page. A manifest or
blob that a reference outside the grammar names cannot exist: reading or
deleting it is simply unknown (404, as the spec says of what is not found),
writing to it is invalid (400).
"""

import re

from django.http import HttpRequest, HttpResponse

from registry import errors, references, responses
from registry.endpoint import endpoint
from registry.errors import RegistryError


def version_check(request: HttpRequest) -> HttpResponse:
    return responses.json_body({}, head=request.method == "HEAD")


# Each endpoint's shape with permissive parts, by what it addresses.
_SHAPES = [
    ("manifest", re.compile(r"^(?P<name>.+)/manifests/(?P<reference>[^/]*)$")),
    ("upload", re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]*)$")),
    ("blob", re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]*)$")),
    ("referrers", re.compile(r"^(?P<name>.+)/referrers/(?P<digest>[^/]*)$")),
    ("tags", re.compile(r"^(?P<name>.+)/tags/list$")),
]

# Methods that name something to read or delete: an impossible reference names nothing.
_ADDRESSING = frozenset({"GET", "HEAD", "DELETE"})


def diagnose(path: str, method: str) -> RegistryError:
    for kind, shape in _SHAPES:
        match = shape.match(path)
        if match is None:
            continue
        parts = match.groupdict()
        if not references.is_name(parts["name"]):
            return RegistryError(errors.NAME_INVALID, detail={"name": parts["name"]})
        if kind == "manifest" and method in _ADDRESSING:
            return RegistryError(errors.MANIFEST_UNKNOWN, detail={"reference": parts["reference"]})
        if kind == "manifest":
            return _bad_reference(parts["reference"])
        if kind == "blob" and method in _ADDRESSING:
            return errors.blob_unknown(parts["digest"])
        if kind in ("blob", "referrers"):  # the referrers API "MUST NOT return a 404": a 400 here
            return RegistryError(
                errors.DIGEST_INVALID, "invalid or unsupported digest", detail={"digest": parts["digest"]}
            )
        if kind == "upload":
            return RegistryError(errors.BLOB_UPLOAD_UNKNOWN, detail={"upload": parts["upload_id"]})
    return RegistryError(errors.UNSUPPORTED, "no such endpoint", status=404)


def _bad_reference(reference: str) -> RegistryError:
    if ":" in reference:
        return RegistryError(
            errors.DIGEST_INVALID, "invalid or unsupported digest", detail={"digest": reference}
        )
    return RegistryError(errors.TAG_INVALID, detail={"tag": reference})


def _unmatched(request: HttpRequest, path: str) -> HttpResponse:
    raise diagnose(path, request.method or "")


version = endpoint(GET=version_check, HEAD=version_check)
unmatched = endpoint(**{method: _unmatched for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")})
