"""Rows for the console's scale tests, inserted in bulk: repositories, tags, images, referrers, uploads.

The rows are what pushes would leave (a manifest's exact bytes, its blob
links, the repository's links); the blob bytes themselves are not stored, so
the console finds each config unreadable, in the same one query.
"""

import hashlib
import json
import uuid

from registry.models import (
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    Tag,
    Upload,
)
from tests import oci


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def _image_document(seed: str, subject: str | None = None) -> dict:
    document = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": digest(f"{seed}-config"), "size": 100},
        "layers": [{"mediaType": oci.OCI_LAYER, "digest": digest(f"{seed}-layer"), "size": 1000}],
    }
    if subject:
        document["subject"] = {"mediaType": oci.OCI_MANIFEST, "digest": subject, "size": 100}
        document["artifactType"] = "application/spdx+json"
    return document


def images(
    repository: Repository, seeds: list[str], subject: str | None = None, tagged: bool = True
) -> list[Manifest]:
    """One image per seed (a config and a layer blob, linked), tagged with the seed unless not ``tagged``."""
    blobs = Blob.objects.bulk_create(
        [
            Blob(digest=digest(f"{seed}-{part}"), size=size, key=f"absent/{seed}-{part}")
            for seed in seeds
            for part, size in (("config", 100), ("layer", 1000))
        ]
    )
    documents = {seed: json.dumps(_image_document(seed, subject)).encode() for seed in seeds}
    manifests = Manifest.objects.bulk_create(
        [
            Manifest(
                repository=repository,
                digest=oci.sha256(documents[seed]),
                media_type=oci.OCI_MANIFEST,
                artifact_type="application/spdx+json" if subject else oci.OCI_CONFIG,
                size=len(documents[seed]),
                content=documents[seed],
                subject=subject or "",
            )
            for seed in seeds
        ]
    )
    manifests = list(Manifest.objects.filter(repository=repository, digest__in=[m.digest for m in manifests]))
    by_digest = {blob.digest: blob for blob in Blob.objects.filter(digest__in=[b.digest for b in blobs])}
    by_seed = {json.loads(bytes(m.content))["config"]["digest"]: m for m in manifests}
    links = []
    for seed in seeds:
        manifest = by_seed[digest(f"{seed}-config")]
        links += [
            ManifestBlob(manifest=manifest, blob=by_digest[digest(f"{seed}-{p}")])
            for p in ("config", "layer")
        ]
    ManifestBlob.objects.bulk_create(links)
    RepositoryBlob.objects.bulk_create(
        [RepositoryBlob(repository=repository, blob=b) for b in by_digest.values()]
    )
    if tagged:
        Tag.objects.bulk_create(
            [
                Tag(repository=repository, name=seed, manifest=by_seed[digest(f"{seed}-config")])
                for seed in seeds
            ]
        )
    return manifests


def index_of(repository: Repository, children: list[Manifest], tag: str) -> Manifest:
    entries = [
        {
            "mediaType": oci.OCI_MANIFEST,
            "digest": m.digest,
            "size": m.size,
            "platform": {"os": "linux", "architecture": f"a{n}"},
        }
        for n, m in enumerate(children)
    ]
    data = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": entries}).encode()
    index = Manifest.objects.create(
        repository=repository, digest=oci.sha256(data), media_type=oci.OCI_INDEX, size=len(data), content=data
    )
    ManifestChild.objects.bulk_create([ManifestChild(parent=index, child=child) for child in children])
    Tag.objects.create(repository=repository, name=tag, manifest=index)
    return index


def repositories(names: list[str]) -> list[Repository]:
    """Repositories of one tagged image each."""
    created = Repository.objects.bulk_create([Repository(name=name) for name in names])
    for repository in Repository.objects.filter(name__in=[r.name for r in created]):
        images(repository, [repository.name.replace("/", "-")])
    return created


def uploads(repository: Repository, count: int) -> None:
    Upload.objects.bulk_create(
        [
            Upload(id=uuid.uuid4(), repository=repository, offset=n * 1000, hash_state=b"")
            for n in range(count)
        ]
    )
