"""The referrers API: ``GET /v2/<name>/referrers/<digest>?artifactType=``.

Always an OCI index, never 404: a digest nobody refers to has an empty list.
"""

from django.http import HttpRequest, HttpResponse

from registry import errors, mediatypes, responses
from registry.endpoint import endpoint
from registry.errors import RegistryError
from registry.models import Manifest


def list_referrers(request: HttpRequest, name: str, digest: str) -> HttpResponse:
    artifact_type = request.GET.get("artifactType") or None
    if artifact_type is not None and not mediatypes.is_media_type(artifact_type):
        # "If the request is invalid ... a 400 Bad Request MUST be returned"; the spec's table
        # has no code for a bad filter: UNSUPPORTED is the one that says "not this".
        raise RegistryError(
            errors.UNSUPPORTED,
            "artifactType must be a media type (type/subtype)",
            detail={"artifactType": artifact_type},
            status=400,
        )
    found = Manifest.objects.referrers(name, digest, artifact_type)
    index = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [_descriptor(manifest) for manifest in found],
    }
    response = responses.json_body(index, content_type=mediatypes.OCI_INDEX, head=request.method == "HEAD")
    if artifact_type:
        response["OCI-Filters-Applied"] = "artifactType"
    return response


def _descriptor(manifest: Manifest) -> dict:
    descriptor = {"mediaType": manifest.media_type, "digest": manifest.digest, "size": manifest.size}
    if manifest.artifact_type:
        descriptor["artifactType"] = manifest.artifact_type
    if manifest.annotations:
        descriptor["annotations"] = manifest.annotations
    return descriptor


referrers = endpoint(GET=list_referrers, HEAD=list_referrers)
