"""OCI image layouts written from Python, for the real clients to push: no files checked in.

``write_image`` writes a single-platform image (config and two random gzip
layers), ``write_index`` a two-platform image index; both return the digest of
the top-level manifest, whose exact bytes are in the layout's blob store.
"""

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, hex_ = digest.split(":", 1)
    return layout / "blobs" / algorithm / hex_


def blobs(layout: Path) -> dict[str, bytes]:
    """Every blob of a layout by digest: what two layouts of the same image share exactly."""
    return {f"sha256:{path.name}": path.read_bytes() for path in (layout / "blobs" / "sha256").iterdir()}


def tagged(layout: Path, tag: str) -> str:
    """The digest that ``index.json`` names ``tag``."""
    index = json.loads((layout / "index.json").read_text())
    (digest,) = [m["digest"] for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == tag]
    return digest


def _store(layout: Path, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
    digest = sha256(data)
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}


def _layer(size: int) -> tuple[bytes, str]:
    """A gzip tar holding one file of random bytes; returns it and its diff id."""
    tar_bytes = io.BytesIO()
    content = os.urandom(size)
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        info = tarfile.TarInfo(f"data/{content[:4].hex()}.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(content))
    uncompressed = tar_bytes.getvalue()
    return gzip.compress(uncompressed, mtime=0), sha256(uncompressed)


def _manifest(layout: Path, architecture: str, layer_sizes: tuple[int, ...]) -> dict[str, Any]:
    layers = [_layer(size) for size in layer_sizes]
    config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in layers]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _store(layout, canonical(config), OCI_CONFIG),
        "layers": [_store(layout, data, OCI_LAYER) for data, _ in layers],
    }
    return _store(
        layout, canonical(manifest), OCI_MANIFEST, platform={"architecture": architecture, "os": "linux"}
    )


def _write_layout(layout: Path, tag: str, top: dict[str, Any]) -> str:
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**top, "annotations": {REF_NAME: tag}}],
    }
    (layout / "index.json").write_bytes(canonical(index))
    return top["digest"]


def write_image(layout: Path, tag: str, layer_sizes: tuple[int, ...] = (300_000, 50_000)) -> str:
    layout.mkdir(parents=True, exist_ok=True)
    descriptor = _manifest(layout, "amd64", layer_sizes)
    del descriptor["platform"]
    return _write_layout(layout, tag, descriptor)


def write_large_image(layout: Path, tag: str, size: int) -> str:
    """A single-platform image whose one layer holds ``size`` random bytes, streamed to disk (never
    whole in memory): a gzip at level 0 (random bytes do not compress; stored blocks cost no CPU)."""
    layout.mkdir(parents=True, exist_ok=True)
    partial = layout / "layer.partial"
    with open(partial, "wb") as file, gzip.GzipFile(fileobj=file, mode="wb", compresslevel=0, mtime=0) as gz:
        uncompressed = _Hashing(gz)
        with tarfile.open(fileobj=uncompressed, mode="w|") as tar:
            info = tarfile.TarInfo("data/large.bin")
            info.size = size
            tar.addfile(info, _RandomBytes())
    with open(partial, "rb") as file:
        digest = "sha256:" + hashlib.file_digest(file, "sha256").hexdigest()
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(path)
    layer = {"mediaType": OCI_LAYER, "digest": digest, "size": path.stat().st_size}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [uncompressed.digest()]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _store(layout, canonical(config), OCI_CONFIG),
        "layers": [layer],
    }
    return _write_layout(layout, tag, _store(layout, canonical(manifest), OCI_MANIFEST))


class _RandomBytes:
    """A file of random bytes without end, for ``tarfile`` to copy from."""

    def read(self, size: int) -> bytes:
        return os.urandom(size)


class _Hashing:
    """A writer that hashes what passes through it to ``target``: a layer's diff id as it is written."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return self.target.write(data)

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def write_index(layout: Path, tag: str) -> str:
    layout.mkdir(parents=True, exist_ok=True)
    manifests = [_manifest(layout, architecture, (80_000, 20_000)) for architecture in ("amd64", "arm64")]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return _write_layout(layout, tag, _store(layout, canonical(index), OCI_INDEX))
