"""The hot reads cost one query each: a pull is bound by the network, not the database.

Writes cost a fixed few. In a test, a transaction shows as two more queries
(the savepoint and its release); in production it is BEGIN and COMMIT. A write
also reads the read-only switch, at most once a second per process
(``registry.maintenance.readonly``), and a request names a repository whose
upstream, if any, is known from the pull-through cache's list of upstreams
(``registry.mirror.routing``, read every few seconds): here both are read once,
before the counts.
"""

from collections.abc import Iterator

import pytest
from django.db import connection

from registry.maintenance import readonly
from registry.mirror import routing
from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"


@pytest.fixture(autouse=True)
def _switch_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(readonly, "REFRESH", float("inf"))
    readonly.forget()
    readonly.state()
    routing.route(NAME)
    yield
    readonly.forget()


@pytest.fixture
def image(client) -> oci.Image:
    pushed = oci.image("queries")
    oci.push_image(client, NAME, pushed, "v1")
    return pushed


def test_it_gets_a_manifest_by_tag_in_one_query(client, image, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert oci.get_manifest(client, NAME, "v1").status_code == 200


def test_it_gets_a_manifest_by_digest_in_one_query(client, image, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert client.head(f"/v2/{NAME}/manifests/{image.manifest.digest}").status_code == 200


def test_it_answers_a_blob_head_in_one_query(client, image, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert client.head(f"/v2/{NAME}/blobs/{image.layers[0].digest}").status_code == 200


def test_it_starts_a_blob_get_in_one_query(client, image, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        response = client.get(f"/v2/{NAME}/blobs/{image.layers[0].digest}")
    assert oci.content(response) == image.layers[0].data


def test_it_appends_a_chunk_in_two_queries(client, django_assert_num_queries) -> None:
    url = oci.start_upload(client, NAME)
    # Claim and read the session in one UPDATE; store the new offset and release the claim in another.
    with django_assert_num_queries(2):
        assert oci.patch_chunk(client, url, b"chunk", 0).status_code == 202


_LAST_STATEMENTS = 1 if connection.vendor == "postgresql" else 2 + 3


def test_it_finishes_an_upload_in_one_claim_and_one_transaction(client, django_assert_num_queries) -> None:
    blob = oci.layer("finish")
    url = oci.start_upload(client, NAME)
    # The claim; then one transaction: record the blob, link it, delete the session (one statement on
    # PostgreSQL; BEGIN, three and COMMIT on SQLite).
    with django_assert_num_queries(1 + _LAST_STATEMENTS):
        response = client.put(
            oci.with_query(url, digest=blob.digest), data=blob.data, content_type=oci.OCTET_STREAM
        )
    assert response.status_code == 201


def test_a_monolithic_post_starts_claimed(client, image, django_assert_num_queries) -> None:
    blob = oci.layer("monolithic")
    # The session inserted already claimed (into the existing repository); then the same transaction
    # as a PUT.
    with django_assert_num_queries(1 + _LAST_STATEMENTS):
        response = client.post(
            oci.with_query(f"/v2/{NAME}/blobs/uploads/", digest=blob.digest),
            data=blob.data,
            content_type=oci.OCTET_STREAM,
        )
    assert response.status_code == 201


def test_it_starts_an_upload_in_one_query(client, image, django_assert_num_queries) -> None:
    # The session is inserted with its repository's id in the same statement.
    with django_assert_num_queries(1):
        assert client.post(f"/v2/{NAME}/blobs/uploads/").status_code == 202


def test_the_first_upload_to_a_repository_creates_it(client, django_assert_num_queries) -> None:
    # The insert finds no repository; then the repository, the audit row of its creation and the
    # session: one statement on PostgreSQL, three on SQLite.
    with django_assert_num_queries(1 + (1 if connection.vendor == "postgresql" else 3)):
        response = client.post("/v2/brand/new/blobs/uploads/")
    assert response.status_code == 202
    assert client.get(response["Location"]).status_code == 204


def test_it_stores_a_tagged_manifest_in_three_statements(client, django_assert_num_queries) -> None:
    pushed = oci.image("manifest-put", layer_count=3)
    for blob in (*pushed.layers, pushed.config):
        assert oci.push_blob(client, NAME, blob).status_code == 201
    # The repository, its blobs among the manifest's, then one statement (PostgreSQL) for the
    # manifest, its references, the indexes that named it as absent (registry.sparse), the links
    # again, the audit row (which reads the tag's previous manifest) and the tag; a savepoint's two
    # around them in a test's transaction. SQLite: each its own statement, in a transaction.
    writes = 1 if connection.vendor == "postgresql" else 6
    with django_assert_num_queries(2 + writes + 2):
        assert oci.put_manifest(client, NAME, "v1", pushed.manifest).status_code == 201
    assert oci.content(oci.get_manifest(client, NAME, "v1")) == pushed.manifest.data
