"""Media types and size limits, as named constants; the media type grammar."""

import re

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFESTS = IMAGE_MANIFESTS | INDEXES
UNSUPPORTED_MANIFESTS = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

# Layers a registry is not expected to hold: their bytes live at the descriptor's urls.
NONDISTRIBUTABLE_LAYERS = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)

OCTET_STREAM = "application/octet-stream"
JSON = "application/json"

# The spec recommends accepting manifests of at least 4 MiB; larger ones get 413.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"


def served_to(media_type: str, accept: str) -> bool:
    """Whether a manifest of ``media_type`` is served to a client whose ``Accept`` header is ``accept``:
    an index only to one that says it takes one (or says nothing); other manifests always."""
    if media_type not in INDEXES:
        return True
    accepted = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    accepted.discard("")
    return not accepted or bool(accepted & {media_type, "*/*", "application/*"})


# RFC 6838's type "/" subtype, without parameters: what the image spec requires of
# ``artifactType`` and of a descriptor's ``mediaType``. At most 255 characters: the
# columns that keep them.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")
MEDIA_TYPE_MAX_LENGTH = 255


def is_media_type(value: str) -> bool:
    return len(value) <= MEDIA_TYPE_MAX_LENGTH and bool(_MEDIA_TYPE.fullmatch(value))
