"""sha512 end to end, on both stores: every upload mode, pulls, mounts, manifests, deletes, gc, verify,
backup and restore; unsupported algorithms are refused.

Blobs are sized over one S3 part (5 MiB in the tests) where the upload mode can
spread them over parts, so that S3's read-back of the committed object is exercised.
"""

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from registry.backup.restore import restore
from registry.backup.snapshot import backup
from registry.gc import collect as gc
from registry.gc.verify import verify
from registry.models import Blob, Upload
from registry.storage import blob_store
from tests import backups, oci

pytestmark = [pytest.mark.django_db, pytest.mark.all_backends]

NAME = "team/app"
OTHER = "team/other"
MiB = 1024 * 1024
BIG = bytes(range(256)) * (6 * MiB // 256) + b"tail"  # over one S3 part


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


class Blob512(oci.Blob):
    @property
    def digest(self) -> str:
        return sha512(self.data)


def blob512(data: bytes, media_type: str = oci.OCI_LAYER) -> Blob512:
    return Blob512(data, media_type)


def stored_objects() -> list[str]:
    return [item.key for item in blob_store().iter_keys()]


def put(client: Client, url: str, digest: str, data: bytes = b"") -> Any:
    return client.put(oci.with_query(url, digest=digest), data=data, content_type=oci.OCTET_STREAM)


def assert_pulled(client: Client, name: str, data: bytes) -> None:
    digest = sha512(data)
    head = client.head(f"/v2/{name}/blobs/{digest}")
    assert (head.status_code, head["Docker-Content-Digest"]) == (200, digest)
    assert head["Content-Length"] == str(len(data))
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert oci.content(response) == data


def assert_created(response: Any, name: str, data: bytes) -> None:
    assert response.status_code == 201, oci.content(response)
    assert response["Docker-Content-Digest"] == sha512(data)
    assert oci.path_of(response["Location"]) == f"/v2/{name}/blobs/{sha512(data)}"


# --- Uploads --------------------------------------------------------------------


def test_it_takes_a_single_post(client: Client) -> None:
    response = client.post(
        oci.with_query(f"/v2/{NAME}/blobs/uploads/", digest=sha512(BIG)),
        data=BIG,
        content_type=oci.OCTET_STREAM,
    )
    assert_created(response, NAME, BIG)
    assert_pulled(client, NAME, BIG)


def test_it_takes_a_post_then_a_put_with_the_bytes(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    assert_created(put(client, url, sha512(BIG), BIG), NAME, BIG)
    assert_pulled(client, NAME, BIG)


def test_it_takes_chunks_then_an_empty_put(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    middle = 5 * MiB + 3
    for start, chunk in ((0, BIG[:middle]), (middle, BIG[middle:])):
        response = oci.patch_chunk(client, url, chunk, start)
        assert response.status_code == 202
        url = response["Location"]
    assert_created(put(client, url, sha512(BIG)), NAME, BIG)
    assert_pulled(client, NAME, BIG)


def test_it_takes_chunks_and_the_last_one_with_the_put(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    url = oci.patch_chunk(client, url, BIG[:1000], 0)["Location"]
    response = client.put(
        oci.with_query(url, digest=sha512(BIG)),
        data=BIG[1000:],
        content_type=oci.OCTET_STREAM,
        headers={"Content-Range": f"1000-{len(BIG) - 1}"},
    )
    assert_created(response, NAME, BIG)
    assert_pulled(client, NAME, BIG)


def test_it_takes_a_streamed_patch(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    response = client.generic("PATCH", url, data=BIG, content_type=oci.OCTET_STREAM)
    assert response.status_code == 202
    assert_created(put(client, response["Location"], sha512(BIG)), NAME, BIG)
    assert_pulled(client, NAME, BIG)


def test_it_serves_a_range_of_a_sha512_blob(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    put(client, url, sha512(BIG), BIG)
    response = client.get(f"/v2/{NAME}/blobs/{sha512(BIG)}", headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert oci.content(response) == BIG[10:20]


@pytest.mark.parametrize("mode", ["single post", "chunked"])
def test_it_refuses_a_wrong_sha512_and_keeps_nothing(client: Client, mode: str) -> None:
    wrong = sha512(b"other bytes")
    if mode == "single post":
        response = client.post(
            oci.with_query(f"/v2/{NAME}/blobs/uploads/", digest=wrong),
            data=BIG,
            content_type=oci.OCTET_STREAM,
        )
    else:
        url = oci.start_upload(client, NAME)
        url = oci.patch_chunk(client, url, BIG, 0)["Location"]
        response = put(client, url, wrong)
    oci.assert_error(response, 400, "DIGEST_INVALID")
    assert oci.document(response)["errors"][0]["detail"]["computed"] == sha512(BIG)
    assert not Blob.objects.exists()
    assert not Upload.objects.exists()
    assert stored_objects() == []
    assert client.head(f"/v2/{NAME}/blobs/{sha512(BIG)}").status_code == 404


@pytest.mark.parametrize("algorithm", ["sha384", "md5", "blake3"])
@pytest.mark.parametrize("mode", ["single post", "put"])
def test_it_refuses_an_unsupported_algorithm(client: Client, algorithm: str, mode: str) -> None:
    digest = f"{algorithm}:{hashlib.new('sha384' if algorithm == 'blake3' else algorithm, BIG).hexdigest()}"
    if mode == "single post":
        response = client.post(
            oci.with_query(f"/v2/{NAME}/blobs/uploads/", digest=digest),
            data=BIG,
            content_type=oci.OCTET_STREAM,
        )
    else:
        response = put(client, oci.start_upload(client, NAME), digest, BIG)
    oci.assert_error(response, 400, "DIGEST_INVALID")
    assert not Blob.objects.exists()


# --- Mounts, manifests, deletes ---------------------------------------------------


def test_it_mounts_a_sha512_blob(client: Client) -> None:
    layer = blob512(b"mounted layer")
    put(client, oci.start_upload(client, OTHER), layer.digest, layer.data)
    response = client.post(f"/v2/{NAME}/blobs/uploads/?mount={layer.digest}&from={OTHER}")
    assert response.status_code == 201
    assert response["Docker-Content-Digest"] == layer.digest
    assert_pulled(client, NAME, layer.data)


def sha512_image(seed: str) -> tuple[Blob512, Blob512, oci.Blob]:
    config = blob512(oci.config(seed).data, oci.OCI_CONFIG)
    layer = blob512(f"layer of {seed}".encode() * 100)
    return config, layer, oci.image_manifest(config, [layer])


def push_sha512_image(
    client: Client, name: str, seed: str, reference: str
) -> tuple[Blob512, Blob512, oci.Blob]:
    config, layer, manifest = sha512_image(seed)
    for blob in (config, layer):
        assert put(client, oci.start_upload(client, name), blob.digest, blob.data).status_code == 201
    response = oci.put_manifest(client, name, reference, manifest)
    assert response.status_code == 201, oci.content(response)
    return config, layer, manifest


def test_it_takes_a_manifest_of_sha512_blobs_by_its_sha512_digest(client: Client) -> None:
    config, layer, manifest = sha512_image("by digest")
    digest = sha512(manifest.data)
    for blob in (config, layer):
        put(client, oci.start_upload(client, NAME), blob.digest, blob.data)

    response = oci.put_manifest(client, NAME, digest, manifest)

    assert response.status_code == 201, oci.content(response)
    assert response["Docker-Content-Digest"] == digest
    pulled = oci.get_manifest(client, NAME, digest)
    assert (pulled.status_code, oci.content(pulled)) == (200, manifest.data)
    assert pulled["Docker-Content-Digest"] == digest
    for blob in (config, layer):
        assert_pulled(client, NAME, blob.data)


def test_it_refuses_a_manifest_whose_sha512_blob_is_missing(client: Client, settings: Any) -> None:
    settings.CROW_SPARSE_MANIFESTS = "none"
    config, layer, manifest = sha512_image("missing")
    put(client, oci.start_upload(client, NAME), config.digest, config.data)
    response = oci.put_manifest(client, NAME, "v1", manifest)
    oci.assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert oci.document(response)["errors"][0]["detail"]["missing"] == [layer.digest]


def test_it_deletes_a_sha512_manifest_and_blob(client: Client) -> None:
    _, layer, manifest = push_sha512_image(client, NAME, "deleted", "v1")
    digest = sha512(manifest.data)
    oci.push_manifest(client, NAME, digest, manifest)

    assert client.delete(f"/v2/{NAME}/manifests/{digest}").status_code == 202
    assert client.delete(f"/v2/{NAME}/blobs/{layer.digest}").status_code == 202

    oci.assert_error(oci.get_manifest(client, NAME, digest), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{NAME}/blobs/{layer.digest}").status_code == 404


# --- gc, verify, backup and restore ------------------------------------------------


def test_gc_keeps_referenced_sha512_blobs_and_frees_the_rest(client: Client) -> None:
    config, layer, _ = push_sha512_image(client, NAME, "kept", "v1")
    loose = blob512(b"nothing references this")
    put(client, oci.start_upload(client, NAME), loose.digest, loose.data)

    report = gc.collect(gc.GcOptions(grace_period=timedelta(0)))

    assert report.blobs == 1
    assert set(Blob.objects.values_list("digest", flat=True)) == {config.digest, layer.digest}
    assert_pulled(client, NAME, layer.data)
    assert len(stored_objects()) == 2


def test_verify_checks_sha512_blobs(client: Client) -> None:
    push_sha512_image(client, NAME, "verified", "v1")
    report = verify()
    assert (report.blobs, report.problems) == (2, [])


def test_verify_finds_a_corrupt_sha512_blob(client: Client, storage_backend: str) -> None:
    if storage_backend != "filesystem":
        pytest.skip("corrupts a file in place")
    _, layer, _ = push_sha512_image(client, NAME, "corrupted", "v1")
    path = Path(blob_store().path(Blob.objects.get(digest=layer.digest).key))
    path.write_bytes(b"X" + path.read_bytes()[1:])
    (problem,) = verify().problems
    assert (problem.digest, problem.kind) == (layer.digest, "corrupt")


def test_backup_and_restore_carry_sha512_blobs(client: Client, tmp_path: Path) -> None:
    push_sha512_image(client, NAME, "backed up", "v1")
    put(client, oci.start_upload(client, NAME), sha512(BIG), BIG)
    before = backups.seen(client)
    dest = tmp_path / "backup"
    backup(str(dest))
    assert (dest / "blobs" / "sha512" / sha512(BIG).split(":")[1]).read_bytes() == BIG
    backups.empty_installation()

    restore(str(dest))

    assert backups.seen(client) == before
    assert Blob.objects.filter(digest__startswith="sha512:").count() == 3
