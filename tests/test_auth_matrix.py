"""Every /v2/ endpoint x every kind of caller: the status and error code of each cell.

The repository ``team/app`` is private. Its callers:

- anonymous: no credentials;
- reader: pull on ``team/*``; writer: pull and push on ``team/app``;
  deleter: delete only on ``team/app``; other: a user without any grant;
- robot: a robot of writer's, pull and push on ``team/*`` (writer's limits apply);
- staff: a staff user, who may do everything.

Every authenticated caller is tried twice: with HTTP Basic on each request,
and with a token from ``/token`` that asked for everything; the token holds
only what was granted, so both must give the same table.
"""

import pytest
from django.test import Client

from registry.auth import robots
from registry.auth.models import PULL, PUSH
from tests import access, oci

pytestmark = [pytest.mark.auth, pytest.mark.django_db]

NAME = "team/app"
IMAGE = oci.image("matrix")
NEW_MANIFEST = oci.image_manifest(IMAGE.config, IMAGE.layers, annotations={"new": "yes"})
CHUNK = b"chunk of a layer"

# 401 answers UNAUTHORIZED with a challenge; 403 DENIED.
MATRIX = """
                 anonymous  reader  writer  deleter  other  robot  staff
version          401        200     200     200      200    200    200
catalog          401        200     200     200      200    200    200
list_tags        401        200     200     403      403    200    200
get_manifest     401        200     200     403      403    200    200
head_manifest    401        200     200     403      403    200    200
put_manifest     401        403     201     403      403    201    201
delete_manifest  401        403     403     202      403    403    202
get_blob         401        200     200     403      403    200    200
head_blob        401        200     200     403      403    200    200
delete_blob      401        403     403     202      403    403    202
start_upload     401        403     202     403      403    202    202
mount_blob       401        403     201     403      403    201    201
get_upload       401        403     204     403      403    204    204
patch_upload     401        403     202     403      403    202    202
finish_upload    401        403     201     403      403    201    201
cancel_upload    401        403     204     403      403    204    204
list_referrers   401        200     200     403      403    200    200
"""


def _table() -> list[tuple[str, str, int]]:
    header, *rows = MATRIX.strip().splitlines()
    callers = header.split()
    cells = []
    for row in rows:
        operation, *statuses = row.split()
        cells += [(operation, caller, int(status)) for caller, status in zip(callers, statuses, strict=True)]
    return cells


CELLS = _table()


@pytest.fixture
def world(settings, tmp_path, client: Client) -> dict:
    """The image ``v1`` in team/app and an upload session there, pushed while the registry was open."""
    settings.CROW_AUTH_DISABLED = True
    oci.push_image(client, NAME, IMAGE, "v1")
    oci.push_blob(client, "elsewhere/app", oci.layer("mounted"))
    upload = oci.start_upload(client, NAME)
    access.secure(settings, tmp_path)

    reader, writer, deleter = access.user("reader"), access.user("writer"), access.user("deleter")
    access.user("other")
    access.user("staff", is_staff=True)
    access.grant("team/*", "pull", to=reader)
    access.grant(NAME, "pull,push", to=writer)
    access.grant("elsewhere/*", "pull", to=writer)
    access.grant(NAME, "delete", to=deleter)
    access.grant("elsewhere/*", "pull", to=deleter)
    _, secret = robots.create(writer, "ci", "team/*\nelsewhere/*", frozenset({PULL, PUSH}))
    return {"upload": oci.path_of(upload), "robot_secret": secret}


def credentials(caller: str, world: dict) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller == "robot":
        return access.basic("robot$ci", world["robot_secret"])
    return access.basic(caller)


def request(client: Client, operation: str, world: dict, headers: dict[str, str]):
    layer = IMAGE.layers[0]
    upload = world["upload"]
    mounted = oci.layer("mounted").digest
    calls = {
        "version": lambda: client.get("/v2/", headers=headers),
        "catalog": lambda: client.get("/v2/_catalog", headers=headers),
        "list_tags": lambda: client.get(f"/v2/{NAME}/tags/list", headers=headers),
        "get_manifest": lambda: client.get(
            f"/v2/{NAME}/manifests/v1", headers={"Accept": oci.MANIFEST_ACCEPT, **headers}
        ),
        "head_manifest": lambda: client.head(f"/v2/{NAME}/manifests/v1", headers=headers),
        "put_manifest": lambda: client.put(
            f"/v2/{NAME}/manifests/v2",
            data=NEW_MANIFEST.data,
            content_type=NEW_MANIFEST.media_type,
            headers=headers,
        ),
        "delete_manifest": lambda: client.delete(
            f"/v2/{NAME}/manifests/{IMAGE.manifest.digest}", headers=headers
        ),
        "get_blob": lambda: client.get(f"/v2/{NAME}/blobs/{layer.digest}", headers=headers),
        "head_blob": lambda: client.head(f"/v2/{NAME}/blobs/{layer.digest}", headers=headers),
        "delete_blob": lambda: client.delete(f"/v2/{NAME}/blobs/{layer.digest}", headers=headers),
        "start_upload": lambda: client.post(f"/v2/{NAME}/blobs/uploads/", headers=headers),
        "mount_blob": lambda: client.post(
            f"/v2/{NAME}/blobs/uploads/?mount={mounted}&from=elsewhere/app", headers=headers
        ),
        "get_upload": lambda: client.get(upload, headers=headers),
        "patch_upload": lambda: client.generic(
            "PATCH", upload, data=CHUNK, content_type=oci.OCTET_STREAM, headers=headers
        ),
        "finish_upload": lambda: client.put(
            oci.with_query(upload, digest=oci.sha256(CHUNK)),
            data=CHUNK,
            content_type=oci.OCTET_STREAM,
            headers=headers,
        ),
        "cancel_upload": lambda: client.delete(upload, headers=headers),
        "list_referrers": lambda: client.get(
            f"/v2/{NAME}/referrers/{IMAGE.manifest.digest}", headers=headers
        ),
    }
    return calls[operation]()


def assert_cell(response, operation: str, status: int) -> None:
    head = operation.startswith("head_")
    if status == 401:
        assert response.status_code == 401, oci.content(response)
        challenge = access.challenge(response)
        assert challenge["service"] == "crow-test"
        assert challenge["realm"] == "http://testserver/token"
        if operation not in ("version", "catalog"):
            assert challenge["scope"].startswith(f"repository:{NAME}:")
        if not head:
            oci.assert_error(response, 401, "UNAUTHORIZED")
    elif status == 403:
        assert response.status_code == 403, oci.content(response)
        if not head:
            oci.assert_error(response, 403, "DENIED")
    else:
        assert response.status_code == status, oci.content(response)


@pytest.mark.parametrize(("operation", "caller", "status"), CELLS)
def test_it_answers_each_caller_with_basic_credentials(
    client: Client, world: dict, operation: str, caller: str, status: int
) -> None:
    response = request(client, operation, world, credentials(caller, world))

    assert_cell(response, operation, status)


@pytest.mark.parametrize(
    ("operation", "caller", "status"), [cell for cell in CELLS if cell[1] != "anonymous"]
)
def test_it_answers_each_caller_with_a_token(
    client: Client, world: dict, operation: str, caller: str, status: int
) -> None:
    everything = [f"repository:{name}:pull,push,delete" for name in (NAME, "elsewhere/app")]
    token = access.token(client, *everything, "registry:catalog:*", headers=credentials(caller, world))

    response = request(client, operation, world, access.bearer(token))

    assert_cell(response, operation, status)


@pytest.mark.parametrize(
    ("caller", "private", "missing"),
    [
        ("anonymous", "team/app", "nobody/nothing"),
        ("other", "team/app", "nobody/nothing"),
        ("reader", "elsewhere/app", "elsewhere/nothing"),
    ],
)
@pytest.mark.parametrize("path", ["tags/list", "manifests/v1", f"blobs/{IMAGE.config.digest}"])
def test_it_answers_for_a_missing_repository_as_for_a_private_one(
    client: Client, world: dict, caller: str, private: str, missing: str, path: str
) -> None:
    headers = {"Accept": oci.MANIFEST_ACCEPT, **credentials(caller, world)}
    seen = [client.get(f"/v2/{name}/{path}", headers=headers) for name in (private, missing)]

    private_answer, missing_answer = (_without_names(response) for response in seen)
    assert private_answer == missing_answer


def _without_names(response) -> tuple:
    """Status, code, message and challenge: all but the name the client sent."""
    (error,) = oci.document(response)["errors"]
    challenge = response.get("WWW-Authenticate", "").split(",scope=")[0]
    return response.status_code, error["code"], error["message"], challenge


CATALOGS = {
    "reader": ["team/app"],
    "writer": ["elsewhere/app", "team/app"],
    "deleter": ["elsewhere/app"],
    "other": [],
    "robot": ["elsewhere/app", "team/app"],
    "staff": ["elsewhere/app", "team/app"],
}


@pytest.mark.parametrize(("caller", "repositories"), CATALOGS.items())
def test_it_lists_only_what_the_caller_may_pull(
    client: Client, world: dict, caller: str, repositories: list[str]
) -> None:
    response = client.get("/v2/_catalog", headers=credentials(caller, world))

    assert oci.document(response) == {"repositories": repositories}
