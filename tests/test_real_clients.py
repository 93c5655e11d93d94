"""Real clients against a real server: skopeo and oras push, pull and discover what they pushed.

The images are OCI layouts written by ``tests.ocilayout``; what comes back
must be byte for byte what went in, under the same digests. Every test runs
twice: blobs on the filesystem, and in moto's S3 server with downloads
redirected to it.
"""

from pathlib import Path
from typing import Any

import pytest
import requests

from registry.models import Blob
from tests import ocilayout
from tests.server import Server
from tests.skopeo import Skopeo

SBOM_TYPE = "application/vnd.example.sbom.v1+json"


@pytest.fixture(params=["filesystem", "s3"])
def server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The server's blob store: its own folder, or a fresh bucket on moto's server."""
    if request.param == "filesystem":
        return {}
    return request.getfixturevalue("s3_server").environment(request.getfixturevalue("s3_bucket"))


def test_it_round_trips_an_image_with_skopeo(skopeo: Skopeo, registry_server: Server, tmp_path: Path) -> None:
    digest = ocilayout.write_image(tmp_path / "in", "v1")
    skopeo.round_trip(tmp_path / "in", "v1", digest, f"{registry_server.host}/team/app:v1")


def test_it_round_trips_a_multi_platform_index_with_skopeo(
    skopeo: Skopeo, registry_server: Server, tmp_path: Path
) -> None:
    digest = ocilayout.write_index(tmp_path / "in", "multi")
    skopeo.round_trip(tmp_path / "in", "multi", digest, f"{registry_server.host}/team/app:multi", "--all")


def test_it_shares_the_blobs_of_an_image_pushed_to_two_repositories(
    skopeo: Skopeo, registry_server: Server, tmp_path: Path, blob_root: Path, server_env: dict[str, str]
) -> None:
    digest = ocilayout.write_image(tmp_path / "in", "v1")
    skopeo.push(tmp_path / "in", "v1", f"{registry_server.host}/team/app:v1")
    # skopeo remembers where it pushed each blob and asks to mount it from there.
    skopeo.push(tmp_path / "in", "v1", f"{registry_server.host}/team/other:v1")

    skopeo.pull(f"{registry_server.host}/team/other:v1", tmp_path / "out", "v1")
    assert ocilayout.tagged(tmp_path / "out", "v1") == digest
    assert ocilayout.blobs(tmp_path / "out") == ocilayout.blobs(tmp_path / "in")
    # One blob and one stored object per config and layer digest, whatever the number of repositories.
    assert Blob.objects.count() == Blob.objects.values("key").distinct().count() == 3
    stored = [path for path in blob_root.rglob("*") if path.is_file() and "uploads" not in path.parts]
    assert len(stored) == (0 if server_env else 3)  # on S3 the objects are in the bucket


def test_it_round_trips_a_file_artifact_with_oras(oras: Any, registry_server: Server, tmp_path: Path) -> None:
    artifact = tmp_path / "notes.txt"
    artifact.write_bytes(b"release notes\n" * 1000)

    response = oras.push(
        target=f"{registry_server.host}/team/files:v1", files=[str(artifact)], disable_path_validation=True
    )
    assert response.status_code == 201

    (pulled,) = oras.pull(target=f"{registry_server.host}/team/files:v1", outdir=str(tmp_path / "out"))
    assert Path(pulled).read_bytes() == artifact.read_bytes()


def test_it_lists_an_artifact_pushed_with_a_subject_as_a_referrer(
    oras: Any, registry_server: Server, tmp_path: Path
) -> None:
    from oras.oci import Subject

    (tmp_path / "image.txt").write_bytes(b"the subject")
    (tmp_path / "sbom.json").write_bytes(b'{"packages": []}')
    (tmp_path / "sbom-config.json").write_bytes(b"{}")
    http = registry_server.session("team/app")
    oras.push(
        target=f"{registry_server.host}/team/app:v1",
        files=[str(tmp_path / "image.txt")],
        disable_path_validation=True,
    )
    subject_bytes = get_manifest(http, registry_server, "v1")
    subject = Subject(ocilayout.OCI_MANIFEST, ocilayout.sha256(subject_bytes), len(subject_bytes))

    response = oras.push(
        target=f"{registry_server.host}/team/app:sbom",
        files=[str(tmp_path / "sbom.json")],
        manifest_config=f"{tmp_path / 'sbom-config.json'}:{SBOM_TYPE}",
        subject=subject,
        disable_path_validation=True,
    )
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject.digest
    sbom_digest = response.headers["Docker-Content-Digest"]
    sbom_bytes = get_manifest(http, registry_server, sbom_digest)
    assert ocilayout.sha256(sbom_bytes) == sbom_digest

    referrers_url = f"{registry_server.url}/v2/team/app/referrers/{subject.digest}"
    referrers = http.get(referrers_url, timeout=30)
    assert referrers.status_code == 200
    assert referrers.headers["Content-Type"] == ocilayout.OCI_INDEX
    (descriptor,) = referrers.json()["manifests"]
    # The artifact's annotations are empty: a registry may copy them as {} or leave them out.
    assert descriptor.pop("annotations", {}) == {}
    assert descriptor == {
        "mediaType": ocilayout.OCI_MANIFEST,
        "digest": sbom_digest,
        "size": len(sbom_bytes),
        "artifactType": SBOM_TYPE,
    }

    filtered = http.get(referrers_url, params={"artifactType": SBOM_TYPE}, timeout=30)
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sbom_digest]

    other = http.get(referrers_url, params={"artifactType": "application/vnd.example.signature"}, timeout=30)
    assert other.headers["OCI-Filters-Applied"] == "artifactType"
    assert other.json()["manifests"] == []


def get_manifest(http: requests.Session, server: Server, reference: str) -> bytes:
    response = http.get(
        f"{server.url}/v2/team/app/manifests/{reference}",
        headers={"Accept": ocilayout.OCI_MANIFEST},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.content
