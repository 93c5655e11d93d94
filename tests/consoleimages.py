"""Images as an operator sees them in the console: real configs (platform, entrypoint, env, labels,
history) and a multi-platform index whose entries name their platforms, built from bytes."""

import json
from dataclasses import dataclass
from urllib.parse import urljoin

import requests

from tests import oci

PLATFORMS = (("linux", "amd64", None), ("linux", "arm64", "v8"))


def config(seed: str, os: str, architecture: str, variant: str | None) -> oci.Blob:
    document = {
        "architecture": architecture,
        "os": os,
        **({"variant": variant} if variant else {}),
        "created": "2026-11-01T10:00:00Z",
        "config": {
            "Entrypoint": ["/usr/bin/app"],
            "Cmd": ["--serve"],
            "Env": ["PATH=/usr/bin", f"SEED={seed}"],
            "Labels": {"org.opencontainers.image.source": "https://example.com/app"},
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created_by": "ADD rootfs"}, {"created_by": "COPY app"}, {"created_by": "CMD"}],
    }
    return oci.Blob(json.dumps(document).encode(), oci.OCI_CONFIG)


def platform_image(
    seed: str, os: str = "linux", architecture: str = "amd64", variant: str | None = None
) -> oci.Image:
    """An image of two layers, 3000 and 1500 bytes, with a config naming its platform."""
    config_blob = config(seed, os, architecture, variant)
    layers = (oci.layer(f"{seed}-base", 3000), oci.layer(f"{seed}-app", 1500))
    return oci.Image(config_blob, layers, oci.image_manifest(config_blob, layers))


@dataclass(frozen=True)
class MultiPlatform:
    index: oci.Blob
    children: tuple[oci.Image, ...]

    @property
    def image_size(self) -> int:
        return sum(blob.size for child in self.children for blob in child.blobs)


def multi_platform(seed: str) -> MultiPlatform:
    children = tuple(platform_image(f"{seed}-{arch}", os, arch, variant) for os, arch, variant in PLATFORMS)
    entries = [
        child.manifest.descriptor(
            platform={"os": os, "architecture": arch, **({"variant": variant} if variant else {})}
        )
        for child, (os, arch, variant) in zip(children, PLATFORMS, strict=True)
    ]
    document = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": entries}
    return MultiPlatform(oci.Blob(json.dumps(document).encode(), oci.OCI_INDEX), children)


def push_multi_platform(client, name: str, image: MultiPlatform, *tags: str) -> None:
    """Children by digest, then the index under each of ``tags`` (Django's test client)."""
    for child in image.children:
        oci.push_image(client, name, child)
    for tag in tags:
        oci.push_manifest(client, name, tag, image.index)


def http_push_blob(session: requests.Session, base: str, name: str, blob: oci.Blob) -> None:
    """A monolithic upload to a real server: POST, then PUT with the digest and the bytes."""
    started = session.post(f"{base}/v2/{name}/blobs/uploads/", timeout=30)
    assert started.status_code == 202, started.text
    location = urljoin(base, started.headers["Location"])
    finished = session.put(
        oci.with_query(location, digest=blob.digest),
        data=blob.data,
        headers={"Content-Type": oci.OCTET_STREAM},
        timeout=30,
    )
    assert finished.status_code == 201, finished.text


def http_push_manifest(
    session: requests.Session, base: str, name: str, reference: str, manifest: oci.Blob
) -> None:
    response = session.put(
        f"{base}/v2/{name}/manifests/{reference}",
        data=manifest.data,
        headers={"Content-Type": manifest.media_type},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def http_push_image(session: requests.Session, base: str, name: str, image: oci.Image, *tags: str) -> None:
    for blob in image.blobs:
        http_push_blob(session, base, name, blob)
    for reference in tags or (image.manifest.digest,):
        http_push_manifest(session, base, name, reference, image.manifest)


def http_push_multi_platform(
    session: requests.Session, base: str, name: str, image: MultiPlatform, *tags: str
) -> None:
    for child in image.children:
        http_push_image(session, base, name, child)
    for tag in tags:
        http_push_manifest(session, base, name, tag, image.index)
