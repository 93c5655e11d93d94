"""``manage.py purge_uploads``: abandoned sessions go, with what they stored; live ones stay."""

import uuid
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from registry.gc.purge import purge_uploads
from registry.models import Upload
from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"
MiB = 1024 * 1024


def abandon(client, data: bytes, hours: int = 48) -> str:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, data, 0)
    Upload.objects.filter(id=url.rsplit("/", 1)[1]).update(updated=timezone.now() - timedelta(hours=hours))
    return url


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_uploads", *args, stdout=out)
    return out.getvalue()


def test_it_purges_abandoned_uploads_and_their_files(client, blob_root: Path) -> None:
    old = abandon(client, b"x" * 1000)
    fresh = abandon(client, b"y" * 10, hours=1)
    assert purge("--older-than", "24h").startswith("purged 1 uploads, 1000 bytes in ")
    oci.assert_error(client.get(old), 404, "BLOB_UPLOAD_UNKNOWN")
    assert client.get(fresh).status_code == 204
    assert [path.name for path in (blob_root / "uploads").iterdir()] == [fresh.rsplit("/", 1)[1]]


def test_it_reports_the_bytes_the_store_held_not_the_saved_offset(client, blob_root: Path) -> None:
    url = abandon(client, b"x" * 1000)
    [data_file] = (blob_root / "uploads" / url.rsplit("/", 1)[1]).iterdir()
    with data_file.open("ab") as file:  # what a writer killed mid-chunk leaves past the saved offset
        file.write(b"y" * 500)
    assert purge("--older-than", "24h").startswith("purged 1 uploads, 1.5 KiB (1500 bytes) in ")
    assert not any(path.is_file() for path in blob_root.rglob("*"))


def test_it_changes_nothing_on_a_dry_run(client) -> None:
    url = abandon(client, b"x" * 10)
    assert purge("--older-than", "1d", "--dry-run").startswith("would purge 1 uploads, 10 bytes")
    assert client.get(url).status_code == 204


def test_it_leaves_an_upload_a_request_is_writing(client) -> None:
    url = abandon(client, b"x" * 10)
    Upload.objects.update(claim=uuid.uuid4(), claimed_until=timezone.now() + timedelta(minutes=1))
    assert purge_uploads(timedelta(hours=1)).uploads == 0
    assert Upload.objects.count() == 1
    Upload.objects.update(claim=None, claimed_until=None)
    assert client.get(url).status_code == 204


def test_it_refuses_a_bad_duration() -> None:
    with pytest.raises(CommandError, match="--older-than"):
        purge("--older-than", "soon")


def test_it_aborts_the_multipart_upload_on_s3(client, s3_settings, s3_server, s3_bucket) -> None:
    abandon(client, b"z" * (5 * MiB + 100))  # one full part and a tail object
    s3 = s3_server.client()
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    assert purge("--older-than", "24h").startswith(f"purged 1 uploads, 5.0 MiB ({5 * MiB + 100} bytes)")
    assert not s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    assert not s3.list_objects_v2(Bucket=s3_bucket).get("Contents")
