"""``manage.py restore``: a backup rebuilds the registry byte for byte, and a damaged one changes nothing."""

import json
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from registry.backup.restore import RestoreError, restore
from registry.backup.snapshot import backup
from registry.events.models import Webhook
from registry.models import Blob, Manifest, Repository
from registry.storage import StorageError, blob_store
from tests import backups, oci, ocilayout
from tests.s3server import S3Server
from tests.server import Server
from tests.skopeo import Skopeo

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("restore", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as failure:
        run(*args)
    return failure.value


def assert_untouched(blob_root: Path) -> None:
    assert not Repository.objects.exists()
    assert not Blob.objects.exists()
    assert not get_user_model().objects.exists()
    assert not [path for path in (blob_root / "blobs").rglob("*") if path.is_file()]


@pytest.fixture
def backed_up(client: Client, tmp_path: Path) -> Path:
    """A backup of one image, taken from a registry that is emptied afterwards."""
    oci.push_image(client, "team/app", oci.image("one", layer_count=2), "v1")
    dest = tmp_path / "backup"
    backup(str(dest))
    backups.empty_installation()
    return dest


@pytest.mark.all_backends
def test_it_restores_everything_into_an_emptied_installation(client: Client, tmp_path: Path) -> None:
    backups.populate(client)
    backups.add_accounts()
    before, accounts = backups.seen(client), backups.accounts()
    dest = tmp_path / "backup"
    backup(str(dest))
    backups.empty_installation()
    assert backups.seen(client) == {}

    output = run(str(dest))

    assert backups.seen(client) == before
    assert backups.accounts() == accounts
    assert get_user_model().objects.get(username="alice").check_password("alice's secret")
    store = blob_store()
    for digest, key in Blob.objects.values_list("digest", "key"):
        assert b"".join(store.read(key)) == ocilayout.blob_path(dest, digest).read_bytes()
    blobs, manifests = Blob.objects.count(), Manifest.objects.count()
    assert output.splitlines()[-1].startswith(
        f"restored 2 repositories, {manifests} manifests, 6 tags, {blobs} blobs ("
    )


def test_it_refuses_a_corrupted_blob_and_changes_nothing(backed_up: Path, blob_root: Path) -> None:
    layer = json.loads((backed_up / "crow-backup.json").read_text())["blobs"][0]
    path = ocilayout.blob_path(backed_up, layer["digest"])
    path.write_bytes(b"x" * layer["size"])  # the right size, the wrong bytes

    failure = refused(str(backed_up))

    assert failure.returncode == 3
    assert f"blob {layer['digest']} is corrupt: its bytes hash to {oci.sha256(path.read_bytes())}" in str(
        failure
    )
    assert "nothing was restored" in str(failure)
    assert_untouched(blob_root)


def test_it_names_every_missing_blob(backed_up: Path, blob_root: Path) -> None:
    digests = [blob["digest"] for blob in json.loads((backed_up / "crow-backup.json").read_text())["blobs"]]
    for digest in digests:
        ocilayout.blob_path(backed_up, digest).unlink()
    failure = refused(str(backed_up))
    assert all(f"blob {digest} is missing" in str(failure) for digest in digests)
    assert_untouched(blob_root)


def test_it_refuses_a_backup_without_its_metadata_file(backed_up: Path, blob_root: Path) -> None:
    (backed_up / "crow-backup.json").unlink()  # what a failed or interrupted backup leaves
    failure = refused(str(backed_up))
    assert failure.returncode == 3
    assert "is not a complete backup: it has no crow-backup.json" in str(failure)
    assert_untouched(blob_root)


def test_it_refuses_a_newer_format_version(backed_up: Path, blob_root: Path) -> None:
    data = json.loads((backed_up / "crow-backup.json").read_text())
    (backed_up / "crow-backup.json").write_text(json.dumps({**data, "version": 3}))
    assert "has version 3; this CRoW reads version 2" in str(refused(str(backed_up)))
    assert_untouched(blob_root)


def test_it_refuses_a_manifest_whose_blob_the_metadata_lacks(backed_up: Path) -> None:
    data = json.loads((backed_up / "crow-backup.json").read_text())
    dropped = data["blobs"].pop()
    (backed_up / "crow-backup.json").write_text(json.dumps(data))
    message = str(refused(str(backed_up)))
    assert f"blob {dropped['digest']} is not in the backup" in message


def test_it_refuses_a_non_empty_installation_unless_told_to_merge(client: Client, tmp_path: Path) -> None:
    first, second, third = oci.image("first"), oci.image("second"), oci.image("third")
    oci.push_image(client, "team/app", first, "v1")
    oci.push_image(client, "team/app", second, "v2")
    dest = tmp_path / "backup"
    backup(str(dest))
    Manifest.objects.filter(digest=second.manifest.digest).delete()
    oci.push_image(client, "team/app", third, "v1")  # v1 moves on after the backup

    failure = refused(str(dest))
    assert failure.returncode == 4
    assert "the installation is not empty (1 repositories, " in str(failure)

    output = run(str(dest), "--merge")
    assert f"tag team/app:v1: kept {third.manifest.digest} (the backup has {first.manifest.digest})" in output
    assert oci.get_manifest(client, "team/app", "v1")["Docker-Content-Digest"] == third.manifest.digest
    assert oci.get_manifest(client, "team/app", "v2")["Docker-Content-Digest"] == second.manifest.digest
    assert oci.get_manifest(client, "team/app", first.manifest.digest).status_code == 200
    assert Blob.objects.count() == 6  # nothing stored twice


def test_it_merges_accounts_keeping_the_existing_ones(tmp_path: Path) -> None:
    backups.add_accounts()
    backup(str(tmp_path / "backup"))
    get_user_model().objects.filter(username="alice").delete()
    root = get_user_model().objects.get(username="root")
    root.set_password("changed since")
    root.save()

    output = run(str(tmp_path / "backup"), "--merge")

    assert "user root: kept the existing account, which differs from the backup's" in output
    assert get_user_model().objects.get(username="root").check_password("changed since")
    alice = get_user_model().objects.get(username="alice")
    assert alice.check_password("alice's secret")
    assert [group.name for group in alice.groups.all()] == ["developers"]
    assert alice.grants.get().pattern == "alice/*"


def test_it_says_that_api_tokens_and_webhooks_are_left_out(tmp_path: Path) -> None:
    backups.add_accounts()
    token = Token.objects.create(user=get_user_model().objects.get(username="root"))
    Webhook.objects.create(
        url="http://hooks.example/crow", secret="hook secret", events=["push"], patterns=["*"]
    )
    out = StringIO()
    call_command("backup", str(tmp_path / "backup"), stdout=out, stderr=StringIO())

    assert "not in a backup: API tokens" in out.getvalue()
    assert "(here now: 1 API tokens, 1 webhooks)" in out.getvalue()
    written = "".join(path.read_text(errors="replace") for path in (tmp_path / "backup").rglob("*.json"))
    assert token.key not in written and "hook secret" not in written
    backups.empty_installation()
    Webhook.objects.all().delete()

    restored = run(str(tmp_path / "backup"))

    assert "not in a backup: API tokens" in restored and "manage.py drf_create_token" in restored
    assert not Token.objects.exists() and not Webhook.objects.exists()
    assert get_user_model().objects.filter(username="root").exists()


def test_it_keeps_nothing_when_the_store_fails_part_way(
    client: Client, tmp_path: Path, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oci.push_image(client, "team/app", oci.image("one", layer_count=3), "v1")
    backup(str(tmp_path / "backup"))
    backups.empty_installation()
    store = blob_store()
    commit, commits = store.commit, []

    def failing_commit(*args: Any) -> str:
        # A store that fails mid-restore (full, unreachable) cannot be produced on demand.
        if len(commits) == 2:
            raise StorageError("cannot store blob: No space left on device")
        commits.append(commit(*args))
        return commits[-1]

    monkeypatch.setattr(store, "commit", failing_commit)
    with pytest.raises(RestoreError, match="No space left on device"):
        restore(str(tmp_path / "backup"))
    assert_untouched(blob_root)
    assert not list((blob_root / "uploads").iterdir())


def test_it_honours_verbosity(backed_up: Path) -> None:
    assert run(str(backed_up), "--verbosity", "0") == ""
    backups.empty_installation()
    verbose = run(str(backed_up), "--verbosity", "2")
    for digest in Blob.objects.values_list("digest", flat=True):
        assert f"verified {digest}" in verbose
        assert f"blob {digest} (" in verbose


# --- A real server, real pushes ------------------------------------------------------------------


@pytest.fixture
def server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """On the S3 backend, the server stores its blobs in the bucket the test process uses."""
    if "storage_backend" in request.fixturenames and request.getfixturevalue("storage_backend") == "s3":
        s3_server: S3Server = request.getfixturevalue("s3_server")
        return s3_server.environment(request.getfixturevalue("s3_bucket"))
    return {}


@pytest.mark.all_backends
def test_a_backup_taken_during_pushes_restores_every_image_it_holds(
    skopeo: Skopeo, registry_server: Server, tmp_path: Path
) -> None:
    host = registry_server.host
    layouts = {"team/app:v1": tmp_path / "image", "team/app:multi": tmp_path / "index"}
    pushed = {
        "team/app:v1": ocilayout.write_image(layouts["team/app:v1"], "v1"),
        "team/app:multi": ocilayout.write_index(layouts["team/app:multi"], "multi"),
    }
    skopeo.push(layouts["team/app:v1"], "v1", f"{host}/team/app:v1")
    skopeo.push(layouts["team/app:multi"], "multi", f"{host}/team/app:multi", "--all")
    skopeo.push(layouts["team/app:v1"], "v1", f"{host}/team/other:v1")  # shared blobs
    layouts["team/other:v1"], pushed["team/other:v1"] = layouts["team/app:v1"], pushed["team/app:v1"]
    for n in range(4):
        ref = f"team/busy:p{n}"
        layouts[ref] = tmp_path / f"busy{n}"
        pushed[ref] = ocilayout.write_image(layouts[ref], f"p{n}", layer_sizes=(200_000, 30_000))

    def push_busy() -> None:
        for n in range(4):
            skopeo.push(layouts[f"team/busy:p{n}"], f"p{n}", f"{host}/team/busy:p{n}")

    pusher = threading.Thread(target=push_busy)
    pusher.start()
    taken_during: list[Path] = []
    try:
        for attempt in range(200):  # bounded: each backup takes well under a second
            if not pusher.is_alive():
                break
            dest = tmp_path / f"backup{attempt}"
            backup(str(dest))
            if pusher.is_alive():
                taken_during.append(dest)
    finally:
        pusher.join()
    assert taken_during, "no backup finished while the pushes ran"

    dest = taken_during[-1]
    data = json.loads((dest / "crow-backup.json").read_text())
    held = {f"{r['name']}:{t['name']}": t["digest"] for r in data["repositories"] for t in r["tags"]}
    assert {"team/app:v1", "team/app:multi", "team/other:v1"} <= set(held)
    assert {ref: pushed[ref] for ref in held} == held

    backups.empty_installation()
    restore(str(dest))

    for ref, digest in held.items():
        assert skopeo.manifest_digest(f"{host}/{ref}") == digest
        out = tmp_path / ("pulled-" + ref.replace("/", "_").replace(":", "_"))
        tag = ref.split(":")[1]
        skopeo.pull(f"{host}/{ref}", out, tag, "--all")
        assert ocilayout.tagged(out, tag) == digest
        assert ocilayout.blobs(out) == ocilayout.blobs(layouts[ref])
