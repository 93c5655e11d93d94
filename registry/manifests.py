"""Parse and validate manifests and indexes; say what they reference.

The manifest's bytes are never re-serialised: this module reads them to
check the schema and to list the blobs, child manifests and subject they
name; the caller stores the bytes exactly as pushed.
"""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from registry import errors, mediatypes, references
from registry.errors import RegistryError


@dataclass(frozen=True)
class ParsedManifest:
    media_type: str
    artifact_type: str = ""
    subject: str = ""
    annotations: dict[str, str] | None = None
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size the manifest declares
    children: list[str] = field(default_factory=list)


def digest_of(content: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"


def parse(content: bytes, content_type: str | None) -> ParsedManifest:
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _invalid("manifest must be a JSON object")
    media_type = _media_type(document, content_type)
    if document.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    if media_type in mediatypes.INDEXES:
        return _parse_index(document, media_type)
    return _parse_image_manifest(document, media_type)


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    header = (content_type or "").split(";")[0].strip().lower()
    if header in ("", mediatypes.JSON, mediatypes.OCTET_STREAM):
        header = declared or _guess(document)
    if header in mediatypes.UNSUPPORTED_MANIFESTS:
        raise _invalid(f"{header} (Docker schema 1) is not supported; push a schema 2 or OCI manifest")
    if header not in mediatypes.MANIFESTS:
        raise _invalid(f"unsupported manifest media type {header!r}", detail={"mediaType": header})
    if declared is not None and declared != header:
        raise _invalid(f"mediaType {declared!r} in the manifest does not match Content-Type {header!r}")
    return header


def _guess(document: dict[str, Any]) -> str:
    return mediatypes.OCI_INDEX if "manifests" in document else mediatypes.OCI_MANIFEST


def _parse_image_manifest(document: dict[str, Any], media_type: str) -> ParsedManifest:
    config = _descriptor(document.get("config"), "config")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise _invalid("layers must be a list")
    blobs = {config["digest"]: config["size"]}
    for position, layer in enumerate(layers):
        descriptor = _descriptor(layer, f"layers[{position}]")
        if descriptor["mediaType"] not in mediatypes.NONDISTRIBUTABLE_LAYERS:
            blobs[descriptor["digest"]] = descriptor["size"]
    # The referrers API lists a manifest without artifactType under its config's media type.
    artifact_type = _artifact_type(document) or config["mediaType"]
    if not mediatypes.is_media_type(artifact_type):
        raise _invalid("config.mediaType must be a media type", detail={"mediaType": artifact_type})
    return ParsedManifest(
        media_type=media_type,
        artifact_type=artifact_type,
        subject=_subject(document),
        annotations=_annotations(document),
        blobs=blobs,
    )


def _parse_index(document: dict[str, Any], media_type: str) -> ParsedManifest:
    entries = document.get("manifests")
    if not isinstance(entries, list):
        raise _invalid("manifests must be a list")
    children = [
        _descriptor(entry, f"manifests[{position}]")["digest"] for position, entry in enumerate(entries)
    ]
    return ParsedManifest(
        media_type=media_type,
        artifact_type=_artifact_type(document),
        subject=_subject(document),
        annotations=_annotations(document),
        children=list(dict.fromkeys(children)),
    )


def _descriptor(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    if not isinstance(value.get("mediaType"), str) or not value["mediaType"]:
        raise _invalid(f"{where}.mediaType must be a non-empty string")
    digest = value.get("digest")
    if not isinstance(digest, str) or not references.is_digest(digest):
        raise _invalid(f"{where}.digest is not a valid digest", detail={"digest": digest})
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}.size must be a non-negative integer")
    return value


def _subject(document: dict[str, Any]) -> str:
    if document.get("subject") is None:
        return ""
    return _descriptor(document["subject"], "subject")["digest"]


def _annotations(document: dict[str, Any]) -> dict[str, str] | None:
    annotations = document.get("annotations")
    if annotations is None:
        return None
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise _invalid("annotations must map strings to strings")
    # JSON allows "\u0000"; PostgreSQL's jsonb, which keeps them for the referrers API, does not.
    if any("\x00" in text for item in annotations.items() for text in item):
        raise _invalid("annotations cannot contain NUL characters")
    return annotations


def _artifact_type(document: dict[str, Any]) -> str:
    artifact_type = _optional_string(document, "artifactType")
    if artifact_type and not mediatypes.is_media_type(artifact_type):
        raise _invalid("artifactType must be a media type", detail={"artifactType": artifact_type})
    return artifact_type


def _optional_string(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(f"{key} must be a string")
    return value


def _invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError(errors.MANIFEST_INVALID, message, detail=detail)
