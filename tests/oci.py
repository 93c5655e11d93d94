"""OCI content built from bytes, and small push helpers over Django's test client.

The conformance tests state what a client sees, so the media types here are the
spec's literals, not the registry's constants: a typo in the registry must not
be copied into the expectation.
"""

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.http.response import HttpResponseBase
from django.test import Client

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCTET_STREAM = "application/octet-stream"
MANIFEST_ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"

# The error codes of the distribution spec's table.
SPEC_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)

# A well-formed digest that no test ever pushes.
UNKNOWN_DIGEST = "sha256:" + "0" * 64


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """Bytes with the media type a descriptor gives them; manifests are blobs too."""

    data: bytes
    media_type: str = OCI_LAYER

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    def document(self) -> dict[str, Any]:
        return json.loads(self.data)


EMPTY_CONFIG = Blob(b"{}", OCI_EMPTY)


def layer(seed: str, size: int = 64) -> Blob:
    """Deterministic, distinct bytes for each seed."""
    data = (seed.encode() * (size // max(len(seed), 1) + 1))[:size]
    return Blob(data, OCI_LAYER)


def config(seed: str) -> Blob:
    data = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    return Blob(data, OCI_CONFIG)


def image_manifest(
    config_blob: Blob,
    layers: Sequence[Blob] = (),
    *,
    subject: Blob | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Blob:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [blob.descriptor() for blob in layers],
    }
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations is not None:
        document["annotations"] = annotations
    return Blob(json.dumps(document).encode(), OCI_MANIFEST)


def image_index(
    manifests: Sequence[Blob],
    *,
    subject: Blob | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Blob:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [manifest.descriptor() for manifest in manifests],
    }
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations is not None:
        document["annotations"] = annotations
    return Blob(json.dumps(document).encode(), OCI_INDEX)


@dataclass(frozen=True)
class Image:
    config: Blob
    layers: tuple[Blob, ...]
    manifest: Blob

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


def image(seed: str, layer_count: int = 1) -> Image:
    config_blob = config(seed)
    layers = tuple(layer(f"{seed}-layer-{i}") for i in range(layer_count))
    return Image(config_blob, layers, image_manifest(config_blob, layers))


# --- Requests ---------------------------------------------------------------


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to whatever query it already carries."""
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode(params)}"


def path_of(url: str) -> str:
    return urlsplit(url).path


def content(response: HttpResponseBase) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def document(response: HttpResponseBase) -> Any:
    return json.loads(content(response))


def start_upload(client: Client, name: str) -> str:
    """The upload URL of a new session, as the registry's Location gives it."""
    response = client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.status_code
    return response["Location"]


def patch_chunk(client: Client, url: str, chunk: bytes, start: int) -> HttpResponseBase:
    content_range = f"{start}-{start + len(chunk) - 1}"
    return client.generic(
        "PATCH",
        url,
        data=chunk,
        content_type=OCTET_STREAM,
        headers={"Content-Range": content_range},
    )


def push_blob(client: Client, name: str, blob: Blob) -> HttpResponseBase:
    """A monolithic upload: POST, then PUT with the digest and all the bytes."""
    url = start_upload(client, name)
    response = client.put(with_query(url, digest=blob.digest), data=blob.data, content_type=OCTET_STREAM)
    assert response.status_code == 201, (response.status_code, content(response))
    return response


def put_manifest(client: Client, name: str, reference: str, manifest: Blob) -> HttpResponseBase:
    return client.put(
        f"/v2/{name}/manifests/{reference}", data=manifest.data, content_type=manifest.media_type
    )


def push_manifest(client: Client, name: str, reference: str, manifest: Blob) -> HttpResponseBase:
    response = put_manifest(client, name, reference, manifest)
    assert response.status_code == 201, (response.status_code, content(response))
    return response


def push_image(client: Client, name: str, pushed: Image, reference: str | None = None) -> None:
    for blob in pushed.blobs:
        push_blob(client, name, blob)
    push_manifest(client, name, reference or pushed.manifest.digest, pushed.manifest)


def get_manifest(client: Client, name: str, reference: str) -> HttpResponseBase:
    return client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT})


# --- Assertions -------------------------------------------------------------


def assert_error(response: HttpResponseBase, status: int, *codes: str) -> None:
    """The spec's error envelope with ``status``, its first code one of ``codes`` if given."""
    body = content(response)
    assert response.status_code == status, (response.status_code, body)
    assert response["Content-Type"].split(";")[0].strip() == "application/json", body
    errors = json.loads(body)["errors"]
    assert isinstance(errors, list) and errors, body
    assert all(isinstance(error["code"], str) for error in errors), body
    if codes:
        assert errors[0]["code"] in codes, body


_LINK = re.compile(r'^<(?P<url>[^>]+)>;\s*rel="next"$')


def next_link(response: HttpResponseBase) -> str | None:
    """The URL of a ``Link: <url>; rel="next"`` header, or None without one."""
    header = response.get("Link")
    if header is None:
        return None
    match = _LINK.match(header.strip())
    assert match, header
    return match["url"]


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)
