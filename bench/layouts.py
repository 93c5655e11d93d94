"""Deterministic OCI image layouts for the benchmark, written once and reused.

Every layer is a gzip tar holding one file of seeded pseudo-random bytes:
incompressible, as real compressed layers are, and the same on every machine.
Layers are written in 1 MiB pieces, hashed as they go, so the 512 MiB one never
sits in memory. Gzip runs at level 0 (stored blocks): generation stays fast and
skopeo, seeing a gzip layer, pushes its bytes as they are. A layout whose
stamp matches its spec is not written again.
"""

import hashlib
import json
import random
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KiB, MiB = 1 << 10, 1 << 20
PIECE = MiB
TAG = "bench"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Spec:
    name: str
    layers: tuple[int, ...]  # uncompressed payload bytes of each layer
    platforms: tuple[str, ...] = ("amd64",)  # more than one: an image index of them


@dataclass(frozen=True)
class Image:
    spec: Spec
    path: Path
    size: int  # bytes of every blob and manifest in the layout: what a push moves
    top: dict[str, Any]  # descriptor of the tagged manifest or index
    layer: str  # digest of one layer, for blob requests

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def source(self) -> str:
        return f"oci:{self.path}:{TAG}"


SPECS = (
    Spec("small", (4 * MiB, 1 * MiB, 256 * KiB)),
    Spec("layers40", tuple((64 * KiB) << (i % 6) for i in range(40))),
    Spec("multiarch", (2 * MiB, 512 * KiB), ("amd64", "arm64", "ppc64le")),
    Spec("large", (512 * MiB,)),
)


def build(root: Path, spec: Spec) -> Image:
    """The layout for ``spec`` under ``root``, written unless an identical one is there."""
    path = root / spec.name
    stamp = repr(spec)
    if (path / "stamp").is_file() and (path / "stamp").read_text() == stamp:
        return load(spec, path)
    staging = root / f"{spec.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    blobs = staging / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    manifests = [_image(blobs, spec, platform) for platform in spec.platforms]
    if len(manifests) == 1:
        top = manifests[0]
        del top["platform"]
    else:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        top = _store(blobs, _canonical(index), OCI_INDEX)
    layout_index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**top, "annotations": {REF_NAME: TAG}}],
    }
    (staging / "index.json").write_bytes(_canonical(layout_index))
    (staging / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (staging / "stamp").write_text(stamp)
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)
    return load(spec, path)


def load(spec: Spec, path: Path) -> Image:
    top = json.loads((path / "index.json").read_bytes())["manifests"][0]
    blobs = path / "blobs" / "sha256"
    document = json.loads((blobs / top["digest"].split(":", 1)[1]).read_bytes())
    if document["mediaType"] == OCI_INDEX:
        first = document["manifests"][0]["digest"]
        document = json.loads((blobs / first.split(":", 1)[1]).read_bytes())
    size = sum(entry.stat().st_size for entry in blobs.iterdir())
    return Image(spec=spec, path=path, size=size, top=top, layer=document["layers"][0]["digest"])


def _image(blobs: Path, spec: Spec, platform: str) -> dict[str, Any]:
    layers = [
        _layer(blobs, size, seed=zlib.crc32(f"{spec.name}/{platform}/{number}".encode()))
        for number, size in enumerate(spec.layers)
    ]
    config = {
        "architecture": platform,
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in layers]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _store(blobs, _canonical(config), OCI_CONFIG),
        "layers": [descriptor for descriptor, _ in layers],
    }
    descriptor = _store(blobs, _canonical(manifest), OCI_MANIFEST)
    return {**descriptor, "platform": {"architecture": platform, "os": "linux"}}


def _layer(blobs: Path, size: int, seed: int) -> tuple[dict[str, Any], str]:
    """Write one layer; its descriptor and diff id (the digest of the uncompressed tar)."""
    compressed, uncompressed = hashlib.sha256(), hashlib.sha256()
    gzip = zlib.compressobj(0, zlib.DEFLATED, 31)  # wbits 31: a gzip wrapper, mtime 0
    generator = random.Random(seed)
    partial = blobs / f"layer-{seed}.partial"
    with open(partial, "wb") as out:

        def emit(data: bytes) -> None:
            uncompressed.update(data)
            packed = gzip.compress(data)
            compressed.update(packed)
            out.write(packed)

        info = tarfile.TarInfo(f"data/{seed:08x}.bin")
        info.size, info.mode, info.mtime = size, 0o644, 0
        emit(info.tobuf(format=tarfile.USTAR_FORMAT))
        remaining = size
        while remaining:
            piece = min(PIECE, remaining)
            emit(generator.randbytes(piece))
            remaining -= piece
        emit(b"\0" * (-size % 512) + b"\0" * 1024)  # pad the file, then the end-of-archive blocks
        tail = gzip.flush()
        compressed.update(tail)
        out.write(tail)
        length = out.tell()
    partial.rename(blobs / compressed.hexdigest())
    descriptor = {"mediaType": OCI_LAYER, "digest": f"sha256:{compressed.hexdigest()}", "size": length}
    return descriptor, f"sha256:{uncompressed.hexdigest()}"


def _store(blobs: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
