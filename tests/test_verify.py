"""``manage.py verify``: every stored blob is read back; missing and corrupt ones are named, exit status 1."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from registry.gc.verify import verify
from registry.models import Blob
from registry.storage import blob_store
from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"


def run_verify(*args: str) -> str:
    out = StringIO()
    call_command("verify", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def overwrite(key: str, data: bytes, storage_backend: str, blob_root: Path, s3_bucket: str | None) -> None:
    """Damage a stored blob behind the registry's back."""
    if storage_backend == "filesystem":
        (blob_root / key).write_bytes(data)
    else:
        store = blob_store()
        store.client.put_object(Bucket=store.bucket, Key=key, Body=data)


@pytest.fixture
def bucket(request: pytest.FixtureRequest, storage_backend: str) -> str | None:
    return request.getfixturevalue("s3_bucket") if storage_backend == "s3" else None


@pytest.mark.all_backends
def test_it_passes_when_every_blob_is_whole(client: Client) -> None:
    image = oci.image("whole", 2)
    oci.push_image(client, NAME, image, "v1")
    output = run_verify()
    size = sum(blob.size for blob in image.blobs)
    assert output.startswith(f"verified 3 blobs, {size} bytes: 0 missing, 0 corrupt, 0 unreadable in ")


@pytest.mark.all_backends
def test_it_finds_a_blob_corrupted_on_purpose(
    client: Client, storage_backend: str, blob_root: Path, bucket: str | None
) -> None:
    image = oci.image("victim", 2)
    oci.push_image(client, NAME, image, "v1")
    damaged = image.layers[1]
    key = Blob.objects.get(digest=damaged.digest).key
    overwrite(key, b"x" * damaged.size, storage_backend, blob_root, bucket)  # same size, other bytes
    with pytest.raises(CommandError, match="1 blobs are missing, corrupt or unreadable"):
        run_verify()
    report = verify()
    assert [(problem.digest, problem.kind) for problem in report.problems] == [(damaged.digest, "corrupt")]
    assert "the bytes hash to sha256:" in report.problems[0].detail


@pytest.mark.all_backends
def test_it_finds_a_truncated_and_a_missing_blob(
    client: Client, storage_backend: str, blob_root: Path, bucket: str | None
) -> None:
    image = oci.image("broken", 2)
    oci.push_image(client, NAME, image, "v1")
    truncated, missing = image.layers
    overwrite(Blob.objects.get(digest=truncated.digest).key, b"short", storage_backend, blob_root, bucket)
    blob_store().delete(Blob.objects.get(digest=missing.digest).key)
    report = verify()
    assert {(problem.digest, problem.kind) for problem in report.problems} == {
        (truncated.digest, "corrupt"),
        (missing.digest, "missing"),
    }
    assert (len(report.missing), len(report.corrupt), report.blobs) == (1, 1, 3)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("verify", "--verbosity", "0", stdout=out, stderr=StringIO())
    assert sorted(line.split()[1] for line in out.getvalue().splitlines()) == sorted(
        [truncated.digest, missing.digest]
    )


def test_it_checks_one_repository_or_a_sample(client: Client) -> None:
    oci.push_image(client, NAME, oci.image("mine", 3), "v1")
    oci.push_image(client, "team/other", oci.image("theirs"), "v1")
    assert verify(repository="team/other").blobs == 2
    assert verify(sample=2).blobs == 2
    assert run_verify("--repository", NAME, "--sample", "10").startswith("verified 4 blobs")


def test_a_blob_deleted_while_it_is_checked_is_no_failure(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = oci.layer("vanishing")
    oci.push_blob(client, NAME, blob)
    store = blob_store()
    read = store.read

    def collected_meanwhile(key: str, chunk_size: int = 1024 * 1024):
        Blob.objects.filter(key=key).delete()  # what gc does: the row first, then the bytes
        store.delete(key)
        return read(key, chunk_size)

    monkeypatch.setattr(store, "read", collected_meanwhile)
    report = verify()
    assert (report.blobs, report.gone, report.problems) == (0, 1, [])


def test_it_refuses_bad_options() -> None:
    with pytest.raises(CommandError, match="--sample"):
        run_verify("--sample", "0")
    with pytest.raises(CommandError, match="no repository"):
        run_verify("--repository", "team/none")
