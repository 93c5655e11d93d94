"""Read-only mode in process: every write on /v2/ refused with the spec's error, reads served, the
switch (command, admin page) audited, the admin's deletes gone, gc and restore refusing without --force.

``tests/test_real_read_only.py`` flips the switch under a running server and pushes with skopeo.
"""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from registry.events.models import READ_ONLY_OFF, READ_ONLY_ON, AuditEvent
from registry.maintenance import readonly
from registry.mirror.models import MirroredRepository, Upstream
from registry.models import Repository, Tag
from tests import oci
from tests.server import free_port

pytestmark = pytest.mark.django_db

NAME = "team/app"
OTHER = "team/other"


@pytest.fixture
def pushed(client: Client) -> oci.Image:
    image = oci.image("read-only")
    oci.push_image(client, NAME, image, "v1")
    return image


def assert_read_only(response, allow: str = "GET, HEAD") -> None:
    oci.assert_error(response, 405, "UNSUPPORTED")
    assert response["Allow"] == allow
    assert "read-only for maintenance" in oci.document(response)["errors"][0]["message"]


def switch(action: str) -> str:
    out = StringIO()
    call_command("read_only", action, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_it_refuses_every_write_and_serves_every_read(client: Client, pushed: oci.Image) -> None:
    upload_url = oci.start_upload(client, NAME)
    layer = oci.layer("new")
    switch("on")

    start = f"/v2/{NAME}/blobs/uploads/"
    assert_read_only(client.post(start), allow="")
    mount = f"/v2/{OTHER}/blobs/uploads/?mount={pushed.layers[0].digest}&from={NAME}"
    assert_read_only(client.post(mount), allow="")
    assert_read_only(client.post(oci.with_query(start, digest=layer.digest)), allow="")
    assert_read_only(oci.patch_chunk(client, upload_url, layer.data, 0), allow="GET")
    assert_read_only(client.put(oci.with_query(upload_url, digest=layer.digest), data=b""), allow="GET")
    assert_read_only(client.delete(upload_url), allow="GET")
    assert_read_only(oci.put_manifest(client, NAME, "v2", pushed.manifest))
    assert_read_only(client.delete(f"/v2/{NAME}/manifests/v1"))
    assert_read_only(client.delete(f"/v2/{NAME}/manifests/{pushed.manifest.digest}"))
    assert_read_only(client.delete(f"/v2/{NAME}/blobs/{pushed.layers[0].digest}"))

    assert oci.content(oci.get_manifest(client, NAME, "v1")) == pushed.manifest.data
    assert client.head(f"/v2/{NAME}/blobs/{pushed.layers[0].digest}").status_code == 200
    assert client.get(upload_url).status_code == 204
    assert oci.document(client.get(f"/v2/{NAME}/tags/list"))["tags"] == ["v1"]
    assert oci.document(client.get("/v2/_catalog"))["repositories"] == [NAME]
    assert client.get(f"/v2/{NAME}/referrers/{pushed.manifest.digest}").status_code == 200
    assert Tag.objects.filter(name="v1").exists()

    switch("off")
    oci.push_manifest(client, NAME, "v2", pushed.manifest)


def test_it_says_how_to_end_it_when_forced_by_the_environment(client: Client, settings) -> None:
    settings.CROW_READ_ONLY = True
    assert_read_only(client.post(f"/v2/{NAME}/blobs/uploads/"), allow="")

    out, err = StringIO(), StringIO()
    call_command("read_only", "off", stdout=out, stderr=err)

    assert out.getvalue().startswith("read-only (CROW_READ_ONLY=1 in the server's environment)")
    assert "restarted without it" in err.getvalue()
    assert_read_only(client.post(f"/v2/{NAME}/blobs/uploads/"), allow="")


def test_it_records_who_switched_and_shows_it(client: Client) -> None:
    assert switch("status").strip() == "read-write"
    assert switch("on").startswith("read-only (switched on by system at ")
    switch("off")

    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor"))
    assert actions == [(READ_ONLY_ON, "system"), (READ_ONLY_OFF, "system")]


def test_it_makes_gc_and_restore_refuse_without_force(pushed: oci.Image, tmp_path) -> None:
    switch("on")

    for command in ("gc", "restore"):
        args = (str(tmp_path / "none"),) if command == "restore" else ()
        with pytest.raises(CommandError, match=f"read-only.*run {command} --force") as refused:
            call_command(command, *args, stdout=StringIO(), stderr=StringIO())
        assert refused.value.returncode == 75

    call_command("gc", "--dry-run", stdout=StringIO(), stderr=StringIO())
    call_command("gc", "--force", "--grace-period", "0", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="is not a complete backup"):  # past the refusal
        call_command("restore", str(tmp_path / "none"), "--force", stdout=StringIO(), stderr=StringIO())


def test_it_is_switched_by_a_superuser_in_the_admin(admin_client: Client, admin_user) -> None:
    page = admin_client.get("/admin/registry/readonlyswitch/")
    assert b"<strong>read-write</strong>" in page.content
    assert b"crow-read-only-banner" not in admin_client.get("/admin/").content

    response = admin_client.post("/admin/registry/readonlyswitch/", {"action": "on"})

    assert response.status_code == 302
    assert readonly.is_on()
    event = AuditEvent.objects.get(action=READ_ONLY_ON)
    assert event.actor == admin_user.username
    assert b"crow-read-only-banner" in admin_client.get("/admin/").content
    admin_client.post("/admin/registry/readonlyswitch/", {"action": "off"})
    assert not readonly.is_on()


def test_it_lets_staff_see_the_mode_but_not_switch_it(client: Client) -> None:
    staff = get_user_model().objects.create_user("operator", password="secret", is_staff=True)
    client.force_login(staff)

    assert b"Only a superuser may switch it" in client.get("/admin/registry/readonlyswitch/").content
    assert client.post("/admin/registry/readonlyswitch/", {"action": "on"}).status_code == 403
    assert not readonly.is_on()


def test_it_takes_the_admins_deletes_away(admin_client: Client, client: Client, pushed: oci.Image) -> None:
    tag = Tag.objects.get(name="v1")
    assert b"delete_selected" in admin_client.get("/admin/registry/tag/").content
    switch("on")

    listing = admin_client.get("/admin/registry/tag/")
    assert b"delete_selected" not in listing.content
    assert b"crow-read-only-banner" in listing.content
    assert admin_client.post(f"/admin/registry/tag/{tag.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Tag.objects.filter(pk=tag.pk).exists()


def test_it_is_switched_through_the_management_api(admin_client: Client, admin_user, client: Client) -> None:
    answer = admin_client.put("/api/read-only/", {"on": True}, content_type="application/json")

    assert answer.status_code == 200, answer.content
    assert answer.json()["on"] is True and answer.json()["switched"] is True
    assert answer.json()["description"].startswith(f"read-only (switched on by {admin_user.username} at ")
    assert_read_only(client.post(f"/v2/{NAME}/blobs/uploads/"), allow="")
    staff = get_user_model().objects.create_user("operator", password="secret", is_staff=True)
    client.force_login(staff)
    assert client.get("/api/read-only/").json()["on"] is True
    assert client.put("/api/read-only/", {"on": False}, content_type="application/json").status_code == 403
    assert (
        admin_client.put("/api/read-only/", {"on": False}, content_type="application/json").json()["on"]
        is False
    )


def test_the_admin_shows_that_the_environment_forces_it(admin_client: Client, settings) -> None:
    settings.CROW_READ_ONLY = True

    page = admin_client.get("/admin/registry/readonlyswitch/").content.decode()

    assert "read-only (CROW_READ_ONLY=1 in the server&#x27;s environment)" in page
    assert 'id="crow-read-only-forced"' in page and 'value="on"' in page


def test_a_mirror_serves_what_it_stored_and_fetches_nothing(client: Client, pushed: oci.Image) -> None:
    """A fetch stores what it fetched: while read-only, a mirrored repository serves what it has,
    and what it has not answers 503 (the upstream may have it; nothing asked it)."""
    mirrored = "mirror.test/team/app"
    oci.push_image(client, mirrored, pushed, "v1")  # stored before it was a mirror, as a pull would
    upstream = Upstream.objects.create(prefix="mirror.test", url=f"http://127.0.0.1:{free_port()}")
    repository = Repository.objects.get(name=mirrored)
    MirroredRepository.objects.create(repository=repository, upstream=upstream)
    switch("on")

    by_digest = client.get(f"/v2/{mirrored}/manifests/{pushed.manifest.digest}")
    assert by_digest.status_code == 200 and by_digest.content == pushed.manifest.data
    assert client.get(f"/v2/{mirrored}/blobs/{pushed.layers[0].digest}").status_code == 200
    missing = oci.layer("never mirrored")
    for response in (
        client.get(f"/v2/{mirrored}/manifests/not-mirrored"),
        client.get(f"/v2/{mirrored}/blobs/{missing.digest}"),
        client.head(f"/v2/{mirrored}/blobs/{missing.digest}"),
    ):
        assert response.status_code == 503, response
        assert response["Retry-After"]
    error = oci.document(client.get(f"/v2/{mirrored}/manifests/not-mirrored"))["errors"][0]
    assert "read-only for maintenance" in error["message"]
    switch("off")
    assert client.get(f"/v2/{mirrored}/manifests/not-mirrored").status_code == 503  # asked: nobody there
    error = oci.document(client.get(f"/v2/{mirrored}/manifests/not-mirrored"))["errors"][0]
    assert "read-only" not in error["message"]
