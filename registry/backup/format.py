"""The backup format, version 1: an OCI image layout plus the registry's own metadata.

A backup is a directory (or an S3 prefix) that standard tools read as an OCI
image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)::

    oci-layout              {"imageLayoutVersion": "1.0.0"}
    index.json              an image index: one descriptor per tag, annotated
                            org.opencontainers.image.ref.name = "<repository>:<tag>",
                            then the untagged manifests that nothing else in their
                            repository references (referrers, images pushed by digest),
                            without a ref name
    blobs/<alg>/<hex>       every blob (configs, layers, artifacts) and the exact bytes of
                            every manifest, by digest
    crow-backup.json        the registry's metadata (below), written last

so ``skopeo copy oci:BACKUP:team/app:v1 docker://elsewhere/team/app:v1`` works
(skopeo takes everything after the path's first ``:`` as the ref name). A tag
whose ``<repository>:<tag>`` skopeo's ref-name grammar refuses (``v1..2``, a tag
starting with ``_``) is still listed and restored; skopeo cannot name it.

``crow-backup.json`` is a JSON object::

    {
      "format": "crow-backup", "version": 1,
      "created": "<ISO 8601 time the snapshot was taken>",
      "blobs": [{"digest", "size", "created"}],         every blob the repositories use
      "repositories": [{
        "name", "created",
        "blobs": ["<digest>"],                          blobs linked into the repository
        "manifests": [{"digest", "media_type", "artifact_type", "size", "subject",
                       "annotations", "created",
                       "blobs": ["<digest>"],           configs and layers it references
                       "children": ["<digest>"],        manifests it references (an index)
                       "absent": [{"digest", "kind"}]}], version 2: what it references that its
                                                        repository lacked ("blob" or "manifest";
                                                        registry.sparse), only where there is some

        "tags": [{"name", "digest", "updated"}]
      }],
      "users": [{"username", "password" (Django's hash), "email", "first_name", "last_name",
                 "is_active", "is_staff", "is_superuser", "date_joined", "last_login",
                 "groups": ["<name>"], "permissions": ["<app_label>.<codename>"]}],
      "groups": [{"name", "permissions": ["<app_label>.<codename>"]}],
      "grants": [{"pattern", "user" or "group", "pull", "push", "delete", "created"}],
      "public_patterns": [{"pattern", "created"}],
      "robots": [{"name", "owner", "patterns", "description", "secret_hash" (SHA-256 of
                  the secret), "pull", "push", "delete", "expires", "revoked", "created",
                  "last_used"}],
      "retention_rules": [{<the rule's fields; foreign keys by name>}]   when the model exists
    }

A backup is written as version 1 when no manifest has absent references, so
that older readers restore it; version 2 only adds ``absent``.

Times are ISO 8601 with their offset; ``null`` where the registry has none.
Only the metadata file marks a backup complete: it is written after every
blob, to a temporary name and renamed, so an interrupted backup leaves none
and ``restore`` refuses it. A reader must refuse a ``format`` it does not know
and a ``version`` newer than its own; a version bump means a reader of the
previous version would lose or misread something.
"""

import json
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

FORMAT = "crow-backup"
VERSION = 2
METADATA = "crow-backup.json"
INDEX = "index.json"
OCI_LAYOUT = "oci-layout"
OCI_LAYOUT_CONTENT = b'{"imageLayoutVersion": "1.0.0"}'
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


class FormatError(Exception):
    """The metadata file is not a backup this version can read."""


def version_for(repositories: Iterable[dict[str, Any]]) -> int:
    """The oldest version that carries ``repositories`` whole (see the module's docstring)."""
    manifests = (manifest for repository in repositories for manifest in repository["manifests"])
    return VERSION if any(manifest.get("absent") for manifest in manifests) else 1


def blob_path(digest: str) -> str:
    """``blobs/sha256/<hex>``: where the layout keeps ``digest``, relative to its root."""
    algorithm, hex_ = digest.split(":", 1)
    return f"blobs/{algorithm}/{hex_}"


def encode(metadata: dict[str, Any]) -> bytes:
    return json.dumps(metadata, cls=DjangoJSONEncoder, indent=1, sort_keys=True).encode()


def decode(data: bytes) -> dict[str, Any]:
    try:
        metadata = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{METADATA} is not valid JSON: {exc}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise FormatError(f"{METADATA} is not a {FORMAT} file")
    version = metadata.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise FormatError(f"{METADATA} has version {version!r}; this CRoW reads version {VERSION} and older")
    for key in ("blobs", "repositories", "users", "groups", "grants", "public_patterns", "robots"):
        if not isinstance(metadata.get(key), list):
            raise FormatError(f"{METADATA} has no list {key!r}")
    return metadata


def index_document(repositories: Iterable[dict[str, Any]]) -> bytes:
    """``index.json``: every tag by ``<repository>:<tag>``, then the untagged root manifests."""
    tagged: list[dict[str, Any]] = []
    untagged: list[dict[str, Any]] = []
    for repository in repositories:
        manifests = {manifest["digest"]: manifest for manifest in repository["manifests"]}
        for tag in repository["tags"]:
            descriptor = _descriptor(manifests[tag["digest"]])
            descriptor["annotations"] = {REF_NAME: f"{repository['name']}:{tag['name']}"}
            tagged.append(descriptor)
        referenced = {tag["digest"] for tag in repository["tags"]}
        referenced.update(child for manifest in manifests.values() for child in manifest["children"])
        untagged.extend(_descriptor(m) for digest, m in manifests.items() if digest not in referenced)
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": tagged + untagged}
    return json.dumps(document, indent=1).encode()


def _descriptor(manifest: dict[str, Any]) -> dict[str, Any]:
    descriptor = {"mediaType": manifest["media_type"], "digest": manifest["digest"], "size": manifest["size"]}
    if manifest["artifact_type"]:
        descriptor["artifactType"] = manifest["artifact_type"]
    return descriptor
