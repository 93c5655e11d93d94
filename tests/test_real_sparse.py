"""Sparse content with the real client: skopeo copies one platform of a two-platform index, digests
preserved, into a real server; the present platform pulls back by the index's digest, the absent one is
unknown until it is pushed, and then the index is whole and gc keeps it.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection

from registry.gc import collect as gc
from registry.models import AbsentReference, Manifest, ManifestChild
from tests import ocilayout
from tests.server import Server, database_url, open_environment, running
from tests.skopeo import Skopeo

TIMEOUT = 60
ACCEPT = f"{ocilayout.OCI_MANIFEST}, {ocilayout.OCI_INDEX}"


def platforms(layout: Path, index_digest: str) -> dict[str, str]:
    index = json.loads(ocilayout.blob_path(layout, index_digest).read_bytes())
    return {entry["platform"]["architecture"]: entry["digest"] for entry in index["manifests"]}


def test_skopeo_copies_one_platform_of_an_index_and_the_other_later(
    skopeo: Skopeo, registry_server: Server, tmp_path: Path
) -> None:
    layout = tmp_path / "in"
    index_digest = ocilayout.write_index(layout, "multi")
    children = platforms(layout, index_digest)
    host = registry_server.host
    # The amd64 image alone, then the index alone (skopeo's --multi-arch index-only: no child images).
    skopeo.push(layout, "multi", f"{host}/team/app:amd64", "--override-arch", "amd64")
    skopeo.push(layout, "multi", f"{host}/team/app:multi", "--multi-arch", "index-only", "--preserve-digests")

    assert skopeo.manifest_digest(f"{host}/team/app:multi") == index_digest
    skopeo.pull(f"{host}/team/app@{index_digest}", tmp_path / "amd64", "amd64", "--override-arch", "amd64")
    pulled = ocilayout.blobs(tmp_path / "amd64")
    assert pulled[children["amd64"]] == ocilayout.blob_path(layout, children["amd64"]).read_bytes()
    http = registry_server.session("team/app")
    absent = http.get(
        f"{registry_server.url}/v2/team/app/manifests/{children['arm64']}",
        headers={"Accept": ACCEPT},
        timeout=TIMEOUT,
    )
    assert absent.status_code == 404
    assert absent.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"

    skopeo.push(layout, "multi", f"{host}/team/app:arm64", "--override-arch", "arm64")

    index = Manifest.objects.get(repository__name="team/app", digest=index_digest)
    linked = set(ManifestChild.objects.filter(parent=index).values_list("child__digest", flat=True))
    assert linked == set(children.values())
    assert not AbsentReference.objects.exists()
    for tag in ("amd64", "arm64"):  # only the index's tag is left: gc keeps its children for it
        assert (
            http.delete(f"{registry_server.url}/v2/team/app/manifests/{tag}", timeout=TIMEOUT).status_code
            == 202
        )
    report = gc.collect(gc.GcOptions(grace_period=timedelta(0), untagged=True))
    assert (report.manifests, report.blobs, report.failed) == (0, 0, [])
    skopeo.pull(f"{host}/team/app@{index_digest}", tmp_path / "all", "multi", "--all", "--preserve-digests")
    assert ocilayout.blobs(tmp_path / "all") == ocilayout.blobs(layout)


@pytest.mark.realserver
def test_a_sparse_index_is_refused_when_the_setting_says_none(
    skopeo_path: str, tmp_path: Path, blob_root: Path, transactional_db: None
) -> None:
    layout = tmp_path / "in"
    ocilayout.write_index(layout, "multi")
    env = open_environment(tmp_path, blob_root, CROW_SPARSE_MANIFESTS="none")
    env["DATABASE_URL"] = database_url(connection.settings_dict)
    with running(env, tmp_path / "server.log") as url, pytest.raises(AssertionError) as failure:
        Skopeo(skopeo_path).push(
            layout, "multi", f"{url.removeprefix('http://')}/team/app:multi", "--multi-arch", "index-only"
        )
    assert "manifest blob unknown" in str(failure.value).lower()
