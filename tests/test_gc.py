"""``manage.py gc``: what nothing references goes, after the grace period; what a kept image needs stays."""

import threading
from collections.abc import Sequence
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from registry import progress
from registry.gc import collect as gc
from registry.gc import sweep
from registry.gc.report import human_size
from registry.models import Blob, Manifest, RepositoryBlob, Upload
from registry.storage import StorageError, blob_store
from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"
OTHER = "team/other"


def collect(grace: timedelta = timedelta(0), **options: Any) -> gc.GcReport:
    return gc.collect(gc.GcOptions(grace_period=grace, **options))


def run_gc(*args: str) -> str:
    out = StringIO()
    call_command("gc", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def stored_keys() -> set[str]:
    return {item.key for item in blob_store().iter_keys()}


def assert_pulls(
    client: Client, name: str, reference: str, manifest: oci.Blob, blobs: Sequence[oci.Blob]
) -> None:
    response = oci.get_manifest(client, name, reference)
    assert response.status_code == 200, oci.content(response)
    assert oci.content(response) == manifest.data
    for blob in blobs:
        response = client.get(f"/v2/{name}/blobs/{blob.digest}")
        assert response.status_code == 200, (blob.digest, oci.content(response))
        assert oci.sha256(oci.content(response)) == blob.digest


def assert_image_pulls(client: Client, name: str, image: oci.Image, reference: str | None = None) -> None:
    assert_pulls(client, name, reference or image.manifest.digest, image.manifest, image.blobs)


def assert_blob_gone(client: Client, name: str, blob: oci.Blob) -> None:
    oci.assert_error(client.get(f"/v2/{name}/blobs/{blob.digest}"), 404, "BLOB_UNKNOWN")
    assert not Blob.objects.filter(digest=blob.digest).exists()


@pytest.mark.all_backends
def test_it_deletes_an_unreferenced_blob_after_the_grace_period_only(client: Client) -> None:
    blob = oci.layer("lonely")
    oci.push_blob(client, NAME, blob)
    key = Blob.objects.get(digest=blob.digest).key
    assert collect(timedelta(hours=1)).blobs == 0
    assert client.get(f"/v2/{NAME}/blobs/{blob.digest}").status_code == 200
    report = collect()
    assert (report.blobs, report.bytes, report.failed) == (1, blob.size, [])
    assert_blob_gone(client, NAME, blob)
    assert not blob_store().exists(key)


def test_it_keeps_a_blob_whose_newest_link_is_within_the_grace_period(client: Client) -> None:
    blob = oci.layer("mounted")
    oci.push_blob(client, NAME, blob)
    Blob.objects.update(created=timezone.now() - timedelta(days=1))
    RepositoryBlob.objects.update(created=timezone.now() - timedelta(days=1))
    response = client.post(f"/v2/{OTHER}/blobs/uploads/?mount={blob.digest}&from={NAME}")
    assert response.status_code == 201
    assert collect(timedelta(hours=1)).blobs == 0
    assert collect().blobs == 1


def test_it_keeps_a_blob_that_a_manifest_in_any_repository_references(client: Client) -> None:
    image = oci.image("shared")
    oci.push_image(client, NAME, image, "v1")
    oci.push_blob(client, OTHER, image.layers[0])  # linked in OTHER, referenced in NAME only
    assert collect(untagged=True).blobs == 0
    assert_image_pulls(client, NAME, image, "v1")
    assert client.get(f"/v2/{OTHER}/blobs/{image.layers[0].digest}").status_code == 200


@pytest.mark.all_backends
def test_it_frees_the_blobs_of_a_deleted_manifest_and_keeps_shared_ones(client: Client) -> None:
    shared = oci.layer("base")
    doomed = oci.image("doomed")
    doomed = oci.Image(
        doomed.config, (shared, *doomed.layers), oci.image_manifest(doomed.config, (shared, *doomed.layers))
    )
    kept = oci.Image(oci.config("kept"), (shared,), oci.image_manifest(oci.config("kept"), (shared,)))
    oci.push_image(client, NAME, doomed, "old")
    oci.push_image(client, NAME, kept, "new")
    assert client.delete(f"/v2/{NAME}/manifests/{doomed.manifest.digest}").status_code == 202
    report = collect()
    assert report.blobs == 2
    assert report.bytes == doomed.config.size + doomed.layers[1].size
    assert_blob_gone(client, NAME, doomed.config)
    assert_blob_gone(client, NAME, doomed.layers[1])
    assert_image_pulls(client, NAME, kept, "new")
    assert len(stored_keys()) == 2


def test_untagged_keeps_the_children_of_a_tagged_index(client: Client) -> None:
    amd64, arm64 = oci.image("amd64"), oci.image("arm64")
    for platform in (amd64, arm64):
        oci.push_image(client, NAME, platform)  # by digest: untagged
    index = oci.image_index([amd64.manifest, arm64.manifest])
    oci.push_manifest(client, NAME, "multi", index)
    stray = oci.image("stray")
    oci.push_image(client, NAME, stray)
    report = collect(untagged=True)
    assert (report.manifests, report.blobs) == (1, 2)
    assert_pulls(client, NAME, "multi", index, [])
    assert_image_pulls(client, NAME, amd64)
    assert_image_pulls(client, NAME, arm64)
    oci.assert_error(oci.get_manifest(client, NAME, stray.manifest.digest), 404, "MANIFEST_UNKNOWN")
    assert_blob_gone(client, NAME, stray.layers[0])


def test_untagged_deletes_an_untagged_index_then_its_children_then_their_referrers(client: Client) -> None:
    platform = oci.image("only")
    oci.push_image(client, NAME, platform)
    index = oci.image_index([platform.manifest])
    oci.push_manifest(client, NAME, index.digest, index)
    sbom = oci.image_manifest(oci.EMPTY_CONFIG, [], subject=platform.manifest)
    oci.push_blob(client, NAME, oci.EMPTY_CONFIG)
    oci.push_manifest(client, NAME, sbom.digest, sbom)
    report = collect(untagged=True)
    assert (report.manifests, report.blobs) == (3, 3)
    assert not Manifest.objects.exists()
    assert not Blob.objects.exists()


def test_untagged_keeps_referrers_of_a_kept_subject_unless_asked(client: Client) -> None:
    image = oci.image("signed")
    oci.push_image(client, NAME, image, "v1")
    signature = oci.image_manifest(oci.EMPTY_CONFIG, [oci.layer("sig")], subject=image.manifest)
    oci.push_blob(client, NAME, oci.EMPTY_CONFIG)
    oci.push_blob(client, NAME, oci.layer("sig"))
    oci.push_manifest(client, NAME, signature.digest, signature)
    orphan = oci.image("orphan")
    oci.push_image(client, NAME, orphan)
    orphan_sbom = oci.image_manifest(oci.EMPTY_CONFIG, [], subject=orphan.manifest)
    oci.push_manifest(client, NAME, orphan_sbom.digest, orphan_sbom)
    assert collect(untagged=True).manifests == 2  # the untagged subject and its referrer
    assert_pulls(client, NAME, signature.digest, signature, [oci.layer("sig")])
    report = collect(untagged=True, delete_referrers=True)
    assert (report.manifests, report.blobs) == (1, 2)
    assert_image_pulls(client, NAME, image, "v1")


def test_untagged_keeps_manifests_within_the_grace_period(client: Client) -> None:
    oci.push_image(client, NAME, oci.image("fresh"))
    assert collect(timedelta(hours=1), untagged=True).manifests == 0
    assert Manifest.objects.count() == 1


def test_it_limits_the_manifest_phase_to_one_repository(client: Client) -> None:
    mine, theirs = oci.image("mine"), oci.image("theirs")
    oci.push_image(client, NAME, mine)
    oci.push_image(client, OTHER, theirs)
    report = collect(untagged=True, repository=NAME)
    assert (report.manifests, report.blobs) == (1, 2)
    assert_image_pulls(client, OTHER, theirs)


def test_a_dry_run_lists_what_would_go_and_changes_nothing(client: Client) -> None:
    image = oci.image("preview")
    oci.push_image(client, NAME, image)
    keys = stored_keys()
    output = run_gc("--dry-run", "--untagged", "--grace-period", "0")
    assert f"manifest {NAME}@{image.manifest.digest} {image.manifest.size} bytes" in output
    assert f"blob {image.layers[0].digest} {image.layers[0].size} bytes" in output
    assert output.splitlines()[-1].startswith(
        "gc would delete 0 tags, 1 manifests, 2 blobs, 0 unknown objects:"
    )
    assert_image_pulls(client, NAME, image)
    assert stored_keys() == keys


def test_it_ends_with_one_summary_line(client: Client) -> None:
    oci.push_blob(client, NAME, oci.layer("x", 10))
    output = run_gc("--grace-period", "0")
    assert output.count("\n") == 1
    assert output.startswith("gc deleted 0 tags, 0 manifests, 1 blobs, 0 unknown objects: 10 bytes in ")
    assert run_gc("--grace-period", "0", "--verbosity", "0") == ""


def test_it_refuses_bad_options() -> None:
    with pytest.raises(CommandError, match="--grace-period"):
        run_gc("--grace-period", "soon")
    with pytest.raises(CommandError, match="--untagged"):
        run_gc("--delete-referrers")
    with pytest.raises(CommandError, match="no repository"):
        run_gc("--repository", "team/none")


@pytest.mark.all_backends
def test_the_storage_sweep_deletes_unknown_objects_older_than_the_grace_period(
    client: Client, storage_backend: str, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = blob_store()
    kept = oci.image("kept")
    oci.push_image(client, NAME, kept, "v1")
    known = stored_keys()
    data = b"no row knows me"
    orphan_id = "0" * 31 + "1"
    state = store.write(orphan_id, store.start_upload(orphan_id), 0, [data])
    orphan = store.commit(orphan_id, state, oci.sha256(data), len(data))
    leftover_id = "0" * 31 + "2"
    store.write(leftover_id, store.start_upload(leftover_id), 0, [data])
    live = oci.start_upload(client, NAME)  # a session in progress: its row is there
    oci.patch_chunk(client, live, data, 0)
    if storage_backend == "filesystem":
        (blob_root / "blobs" / "foreign").write_bytes(b"not ours")  # not named by an upload: left alone
    monkeypatch.setattr(sweep, "LEFTOVER_MIN_AGE", timedelta(0))

    assert collect(timedelta(hours=1)).objects == 0
    report = collect()
    assert report.objects == 2
    assert orphan not in stored_keys()
    assert all(item.upload_id != leftover_id for item in store.iter_keys())
    assert known <= stored_keys()
    assert oci.patch_chunk(client, live, b"more", len(data)).status_code == 202
    assert_image_pulls(client, NAME, kept, "v1")


def test_the_storage_sweep_spares_a_young_upload_leftover(client: Client, blob_root: Path) -> None:
    store = blob_store()
    store.start_upload("f" * 32)  # its row would be written a moment later
    assert collect().objects == 0
    assert (blob_root / "uploads" / ("f" * 32)).exists()


@pytest.mark.all_backends
def test_a_gc_killed_after_its_commit_leaves_kept_images_whole_and_the_next_run_finishes(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, doomed = oci.image("kept", 2), oci.image("doomed", 2)
    oci.push_image(client, NAME, kept, "v1")
    oci.push_image(client, NAME, doomed, "v2")
    client.delete(f"/v2/{NAME}/manifests/v2")
    store = blob_store()
    delete = store.delete
    calls, lock = [], threading.Lock()

    def killed(key: str) -> None:
        with lock:
            calls.append(key)
            first = len(calls) == 1
        if not first:  # the first object went, then the process died: nothing more happens
            raise KeyboardInterrupt("killed")
        delete(key)

    monkeypatch.setattr(store, "delete", killed)
    with pytest.raises(KeyboardInterrupt):
        collect(untagged=True)
    assert not Blob.objects.filter(digest__in=[blob.digest for blob in doomed.blobs]).exists()
    assert len(stored_keys()) == len(kept.blobs) + 2  # two rows gone, their bytes not yet
    assert_image_pulls(client, NAME, kept, "v1")

    monkeypatch.setattr(store, "delete", delete)
    report = collect(untagged=True)
    assert (report.blobs, report.objects) == (0, 2)
    assert len(stored_keys()) == len(kept.blobs)
    assert_image_pulls(client, NAME, kept, "v1")


def test_a_failed_storage_delete_is_reported_and_swept_later(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    oci.push_blob(client, NAME, oci.layer("stuck"))
    store = blob_store()

    def refuse(key: str) -> None:
        raise StorageError("the store is down")

    monkeypatch.setattr(store, "delete", refuse)
    with pytest.raises(CommandError, match="1 failures") as raised:
        run_gc("--grace-period", "0")
    assert raised.value.returncode == 1
    monkeypatch.undo()
    assert collect().objects == 1
    assert stored_keys() == set()


def test_it_keeps_upload_sessions_and_their_bytes(client: Client) -> None:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, b"half", 0)
    collect()
    assert Upload.objects.count() == 1
    assert client.get(url).status_code == 204


@pytest.mark.django_db(transaction=True)
def test_a_second_gc_does_not_run_while_one_holds_the_lock() -> None:
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        try:
            with gc.exclusive():
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(30)
        with pytest.raises(gc.GcBusy):
            collect()
        with pytest.raises(CommandError, match="another gc is running") as raised:
            run_gc()
        assert raised.value.returncode == 75
        assert run_gc("--dry-run").startswith("gc would delete")  # a dry run needs no lock
    finally:
        release.set()
        thread.join()
    assert run_gc().startswith("gc deleted")


def test_it_lists_what_it_deletes_at_verbosity_2_and_shows_progress_on_stderr(client: Client) -> None:
    blob = oci.layer("listed", 10)
    oci.push_blob(client, NAME, blob)
    out, err = StringIO(), StringIO()
    call_command("gc", "--grace-period", "0", "--verbosity", "2", stdout=out, stderr=err)
    assert out.getvalue().splitlines()[0] == f"blob {blob.digest} 10 bytes"
    assert "blobs: 1 to do" in err.getvalue().splitlines()
    assert "blobs: done, 1/1" in err.getvalue().splitlines()


def test_the_progress_bar_writes_notes_above_the_bar() -> None:
    bar, notes = StringIO(), StringIO()
    watcher = progress.CommandProgress(bar, notes, bar=True)
    with watcher.phase("blobs", 2) as phase:
        phase.advance(2)
        watcher.note("blob sha256:abc 1 bytes")
    assert "2/2" in bar.getvalue()
    assert notes.getvalue() == "blob sha256:abc 1 bytes\n"


def test_the_storage_sweep_aborts_a_multipart_upload_whose_session_is_gone(
    client: Client, s3_settings: Any, s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = oci.start_upload(client, NAME)
    oci.patch_chunk(client, url, b"z" * (5 * 1024 * 1024 + 100), 0)  # one part and a tail object
    Upload.objects.all().delete()  # the session's row went, its bytes stayed (a crash)
    s3 = s3_server.client()
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    monkeypatch.setattr(sweep, "LEFTOVER_MIN_AGE", timedelta(0))
    assert collect().objects == 2
    assert not s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    assert not s3.list_objects_v2(Bucket=s3_bucket).get("Contents")


def test_it_prints_sizes_people_read() -> None:
    assert human_size(10) == "10 bytes"
    assert human_size(1536) == "1.5 KiB (1536 bytes)"
    assert human_size(3 * 1024**3) == "3.0 GiB (3221225472 bytes)"


def test_it_says_what_the_grace_period_kept(client: Client) -> None:
    young = oci.layer("a blob pushed a moment ago")
    oci.push_blob(client, NAME, young)
    summary = run_gc("--untagged")
    assert "kept 1 unreferenced blob younger than 1h (--grace-period 0 to include it;" in summary
    assert Blob.objects.filter(digest=young.digest).exists()

    summary = run_gc("--untagged", "--grace-period", "0")
    assert "younger than" not in summary
    assert summary.startswith("gc deleted 0 tags, 0 manifests, 1 blobs")
    assert not Blob.objects.filter(digest=young.digest).exists()
