"""``manage.py backup``: an OCI image layout plus the registry's metadata; incremental, verified, whole."""

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from registry.backup import layout as backup_layout
from registry.backup import s3 as backup_s3
from registry.backup.format import REF_NAME
from registry.backup.layout import DirectoryLayout
from registry.backup.snapshot import BackupError, backup
from registry.models import Blob, Manifest, RepositoryBlob
from registry.progress import Phase, Progress
from registry.storage import blob_store
from tests import backups, oci, ocilayout, processes
from tests.s3server import S3Server

pytestmark = pytest.mark.django_db


def metadata(dest: Path) -> dict[str, Any]:
    return json.loads((dest / "crow-backup.json").read_text())


def run(*args: str) -> str:
    out = StringIO()
    call_command("backup", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_it_writes_an_oci_layout_and_the_metadata(client: Client, tmp_path: Path) -> None:
    pushed = backups.populate(client)
    dest = tmp_path / "backup"

    report = backup(str(dest))

    assert json.loads((dest / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((dest / "index.json").read_text())
    names = {m["annotations"][REF_NAME]: m["digest"] for m in index["manifests"] if "annotations" in m}
    assert (
        names["team/app:v1"] == names["team/app:latest"] == names["team/other:v1"] == pushed["first"].digest
    )
    assert names["team/app:multi"] == pushed["index"].digest
    assert len(names) == 6
    untagged = {m["digest"] for m in index["manifests"] if "annotations" not in m}
    assert pushed["sbom"].digest in untagged  # a referrer, for tools that look for one
    for digest, size in Blob.objects.values_list("digest", "size"):
        assert (dest / "blobs" / "sha256" / digest.split(":")[1]).stat().st_size == size
    for digest, content in Manifest.objects.values_list("digest", "content"):
        assert ocilayout.blob_path(dest, digest).read_bytes() == bytes(content)

    data = metadata(dest)
    assert (data["format"], data["version"]) == ("crow-backup", 1)
    assert [r["name"] for r in data["repositories"]] == ["team/app", "team/other"]
    app = data["repositories"][0]
    assert [t["name"] for t in app["tags"]] == ["big", "latest", "multi", "v1", "v2"]
    (index_entry,) = [m for m in app["manifests"] if m["digest"] == pushed["index"].digest]
    assert len(index_entry["children"]) == 2
    (sbom,) = [m for m in app["manifests"] if m["digest"] == pushed["sbom"].digest]
    assert (sbom["subject"], sbom["artifact_type"]) == (pushed["first"].digest, backups.SBOM)
    assert report.blobs == Blob.objects.count() == len(data["blobs"])
    assert report.manifests == Manifest.objects.count()
    assert report.copied == report.blobs + Manifest.objects.values("digest").distinct().count()
    assert not list((dest / ".crow-tmp").iterdir())


def test_it_copies_nothing_twice(client: Client, tmp_path: Path) -> None:
    backups.populate(client)
    dest = tmp_path / "backup"
    first = backup(str(dest))

    again = backup(str(dest))
    assert (again.copied, again.bytes_copied) == (0, 0)
    assert again.skipped == first.copied + first.skipped

    image = oci.image("new")
    oci.push_image(client, "team/app", image, "v3")
    third = backup(str(dest))
    assert third.copied == 3  # its config, layer and manifest
    assert third.bytes_copied == sum(blob.size for blob in (*image.blobs, image.manifest))


def test_it_backs_up_users_grants_robots_and_rules(tmp_path: Path) -> None:
    backups.add_accounts()
    backup(str(tmp_path / "backup"))
    data = metadata(tmp_path / "backup")
    (alice,) = [user for user in data["users"] if user["username"] == "alice"]
    assert alice["password"].startswith("pbkdf2_sha256$") or "$" in alice["password"]
    assert alice["groups"] == ["developers"]
    assert {(g["pattern"], g.get("user"), g.get("group")) for g in data["grants"]} == {
        ("alice/*", "alice", None),
        ("team/*", None, "developers"),
    }
    assert data["robots"][0] | {"created": None} == data["robots"][0] | {
        "name": "ci",
        "owner": "root",
        "secret_hash": "ab" * 32,
        "pull": True,
        "push": True,
        "delete": False,
        "created": None,
    }
    assert [p["pattern"] for p in data["public_patterns"]] == ["public/*"]
    (rule,) = data["retention_rules"]
    assert (rule["pattern"], rule["tag_pattern"], rule["keep_latest"]) == ("team/*", "pr-.*", 5)


def test_it_fails_clearly_when_the_destination_is_a_file(client: Client, tmp_path: Path) -> None:
    backups.populate(client)
    dest = tmp_path / "file"
    dest.write_text("not a directory")
    with pytest.raises(CommandError, match="is not a directory") as failure:
        run(str(dest))
    assert failure.value.returncode == 1


def test_it_fails_clearly_when_the_destination_is_full_and_leaves_no_metadata(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backups.populate(client)
    dest = tmp_path / "backup"
    real_open = open

    def full_disk(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        # A real ENOSPC from the kernel: temporary files are written to /dev/full.
        if "w" in mode and backup_layout.TEMP_DIR in str(path) and "blobs" not in str(path):
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(backup_layout, "open", full_disk, raising=False)
    with pytest.raises(CommandError, match=r"backup failed: the destination .* is full"):
        run(str(dest))
    assert not (dest / "crow-backup.json").exists()
    assert not list((dest / ".crow-tmp").iterdir())


def test_it_refuses_a_blob_corrupted_in_the_store(client: Client, tmp_path: Path, blob_root: Path) -> None:
    image = oci.image("corrupt")
    oci.push_image(client, "team/app", image, "v1")
    blob = Blob.objects.get(digest=image.layers[0].digest)
    (blob_root / blob.key).write_bytes(b"rotten")

    with pytest.raises(BackupError, match=f"blob {blob.digest} is corrupt"):
        backup(str(tmp_path / "backup"))
    assert not (tmp_path / "backup" / "crow-backup.json").exists()
    assert not ocilayout.blob_path(tmp_path / "backup", blob.digest).exists()


def test_it_leaves_out_an_unreferenced_blob_that_gc_deletes_meanwhile(client: Client, tmp_path: Path) -> None:
    image = oci.image("kept")
    oci.push_image(client, "team/app", image, "v1")
    garbage = oci.layer("garbage")
    oci.push_blob(client, "team/app", garbage)

    def collect(name: str, total: int) -> None:
        if name == "copying blobs (bytes)":  # after the snapshot, before the copy: as gc would
            row = Blob.objects.get(digest=garbage.digest)
            blob_store().delete(row.key)
            RepositoryBlob.objects.filter(blob=row).delete()
            row.delete()

    progress = Recorder(on_phase=collect)
    report = backup(str(tmp_path / "backup"), progress=progress)
    assert report.vanished == 1
    data = metadata(tmp_path / "backup")
    assert garbage.digest not in {blob["digest"] for blob in data["blobs"]}
    assert garbage.digest not in data["repositories"][0]["blobs"]


class Recorder(Progress):
    """Progress that keeps what it is told, and may act when a phase begins."""

    def __init__(self, on_phase: Any = None) -> None:
        self.phases: list[tuple[str, int | None]] = []
        self.notes: list[str] = []
        self.advanced = 0
        self.on_phase = on_phase

    def phase(self, name: str, total: int | None = None) -> Phase:
        self.phases.append((name, total))
        if self.on_phase:
            self.on_phase(name, total)
        recorder = self

        class Counted(Phase):
            def advance(self, n: int = 1) -> None:
                recorder.advanced += n

        return Counted()

    def note(self, line: str) -> None:
        self.notes.append(line)


def test_it_reports_progress_and_honours_verbosity(client: Client, tmp_path: Path) -> None:
    image = oci.image("chatty")
    oci.push_image(client, "team/app", image, "v1")
    progress = Recorder()
    backup(str(tmp_path / "one"), progress=progress)
    assert ("copying blobs (bytes)", sum(blob.size for blob in image.blobs)) in progress.phases
    assert progress.advanced == 1 + sum(blob.size for blob in image.blobs)  # a manifest, then bytes

    assert run(str(tmp_path / "two"), "--verbosity", "0") == ""
    quiet = run(str(tmp_path / "three"))
    assert quiet.splitlines()[-1].startswith("backed up 1 repositories, 1 manifests, 1 tags, 2 blobs")
    verbose = run(str(tmp_path / "four"), "--verbosity", "2")
    assert f"blob {image.layers[0].digest} ({image.layers[0].size} bytes)" in verbose


def test_it_prunes_blobs_only_older_backups_needed(client: Client, tmp_path: Path) -> None:
    old = oci.image("old")
    oci.push_image(client, "team/app", old, "v1")
    dest = tmp_path / "backup"
    backup(str(dest))
    Manifest.objects.filter(digest=old.manifest.digest).delete()
    RepositoryBlob.objects.all().delete()
    new = oci.image("new")
    oci.push_image(client, "team/app", new, "v2")

    assert backup(str(dest)).pruned == 0
    assert ocilayout.blob_path(dest, old.layers[0].digest).exists()
    assert backup(str(dest), prune=True).pruned == 3  # the old config, layer and manifest
    assert sorted(ocilayout.blobs(dest)) == sorted(b.digest for b in (*new.blobs, new.manifest))


@pytest.mark.django_db(transaction=True)
def test_it_is_a_snapshot_a_concurrent_push_does_not_change(client: Client, tmp_path: Path) -> None:
    first = oci.image("before")
    oci.push_image(client, "team/app", first, "v1")
    late = oci.image("during")

    def push_during_the_snapshot(name: str, total: int) -> None:
        if name == "writing manifests":  # inside the snapshot transaction
            thread = threading.Thread(target=push_from_another_connection, args=(late,))
            thread.start()
            thread.join()

    backup(str(tmp_path / "backup"), progress=Recorder(on_phase=push_during_the_snapshot))
    assert oci.get_manifest(client, "team/app", "late").status_code == 200
    data = metadata(tmp_path / "backup")
    assert [t["name"] for t in data["repositories"][0]["tags"]] == ["v1"]
    assert {m["digest"] for m in data["repositories"][0]["manifests"]} == {first.manifest.digest}


def push_from_another_connection(image: oci.Image) -> None:
    try:
        oci.push_image(Client(), "team/app", image, "late")
    finally:
        connection.close()


def test_skopeo_reads_the_backup(client: Client, tmp_path: Path, skopeo_path: str) -> None:
    ocilayout.write_image(tmp_path / "image", "v1")
    ocilayout.write_index(tmp_path / "index", "multi")
    image = backups.push_layout(client, "team/app", tmp_path / "image", "v1")
    index = backups.push_layout(client, "team/app", tmp_path / "index", "multi")
    dest = tmp_path / "backup"
    backup(str(dest))

    def skopeo(*args: str) -> None:
        result = processes.run([skopeo_path, "--insecure-policy", *args], capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr.decode()

    # skopeo takes everything after the path's first colon as the ref name.
    skopeo("copy", f"oci:{dest}:team/app:v1", f"oci:{tmp_path / 'out'}:v1")
    assert ocilayout.tagged(tmp_path / "out", "v1") == image
    assert ocilayout.blobs(tmp_path / "out") == ocilayout.blobs(tmp_path / "image")
    skopeo("copy", "--all", f"oci:{dest}:team/app:multi", f"oci:{tmp_path / 'multi'}:multi")
    assert ocilayout.tagged(tmp_path / "multi", "multi") == index
    assert ocilayout.blobs(tmp_path / "multi") == ocilayout.blobs(tmp_path / "index")


@pytest.fixture
def backup_bucket(settings: Any, s3_server: S3Server) -> Iterator[str]:
    """A bucket of its own for backups, reached with the CROW_S3_* settings; the registry stays on files."""
    for name, value in s3_server.environment("unused").items():
        if name not in ("CROW_STORAGE", "CROW_S3_BUCKET", "CROW_S3_PART_SIZE"):
            setattr(settings, name, value)
    client = s3_server.client()
    name = f"backup-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=name)


def test_it_backs_up_to_a_bucket(
    client: Client, backup_bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backup_s3, "PART_SIZE", 5 * 1024 * 1024)  # the 6 MiB blob goes in two parts
    backups.populate(client)
    before = backups.seen(client)
    url = f"s3://{backup_bucket}/crow/nightly"

    first = backup(url)
    assert backup(url).copied == 0

    s3 = s3_server.client()
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=backup_bucket, MaxKeys=1000)["Contents"]}
    assert {"crow/nightly/oci-layout", "crow/nightly/index.json", "crow/nightly/crow-backup.json"} <= keys
    assert len(keys) == 3 + first.copied
    assert not s3.list_multipart_uploads(Bucket=backup_bucket).get("Uploads")

    backups.empty_installation()
    call_command("restore", url, stdout=StringIO(), stderr=StringIO())
    assert backups.seen(client) == before


def test_it_names_a_missing_bucket(client: Client, backup_bucket: str) -> None:
    oci.push_image(client, "team/app", oci.image("one"), "v1")
    with pytest.raises(CommandError, match=r"s3://no-such-bucket/x/ failed: could not reach the bucket"):
        run("s3://no-such-bucket/x")


def test_restore_refuses_a_blob_corrupted_in_the_bucket(
    client: Client, backup_bucket: str, s3_server: S3Server, blob_root: Path
) -> None:
    image = oci.image("one")
    oci.push_image(client, "team/app", image, "v1")
    backup(f"s3://{backup_bucket}/b")
    backups.empty_installation()
    digest = image.layers[0].digest
    s3_server.client().put_object(Bucket=backup_bucket, Key=f"b/blobs/sha256/{digest[7:]}", Body=b"rotten")

    with pytest.raises(CommandError, match=f"blob {digest} is corrupt: has 6 bytes, not 64") as failure:
        call_command("restore", f"s3://{backup_bucket}/b", stdout=StringIO(), stderr=StringIO())
    assert failure.value.returncode == 3
    assert not Blob.objects.exists()


def test_it_names_an_unreachable_destination(client: Client, backup_bucket: str, settings: Any) -> None:
    oci.push_image(client, "team/app", oci.image("one"), "v1")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        settings.CROW_S3_ENDPOINT_URL = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(CommandError, match=f"s3://{backup_bucket}/x/ is unreachable") as failure:
        run(f"s3://{backup_bucket}/x")
    assert failure.value.returncode == 1


def test_it_refuses_to_write_where_another_backup_is_writing(tmp_path: Path) -> None:
    other = DirectoryLayout(tmp_path / "backup")
    other.prepare()
    try:
        with pytest.raises(BackupError, match="another backup is writing to"):
            backup(str(tmp_path / "backup"))
    finally:
        other.close()
    backup(str(tmp_path / "backup"))
