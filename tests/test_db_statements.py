"""The hand-written SQL of ``registry.db`` cannot drift from the models.

Every raw INSERT makes the row the ORM would have made (every column, the
same defaults); a field added to a model, with its default, is in the next
statement built; and no statement in ``registry/db/`` spells a table or
column name, or a default, by hand.
"""

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.db import models
from django.test.utils import isolate_apps
from django.utils import timezone

from registry.db import blobs, manifests, repositories, uploads
from registry.db.sql import Insert
from registry.manifests import ParsedManifest
from registry.models import (
    AbsentReference,
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    Tag,
    Upload,
)

pytestmark = pytest.mark.django_db

DB = Path(__file__).resolve().parent.parent / "registry" / "db"
SQL_KEYWORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|JOIN|SET|RETURNING|VALUES)\b")


def columns(row: models.Model) -> dict[str, object]:
    """The row as stored (read back), by column, without its primary key; times as "recent"."""
    stored = type(row).objects.get(pk=row.pk)
    values = {}
    for field in type(row)._meta.concrete_fields:
        if field.primary_key:
            continue
        value = getattr(stored, field.attname)
        if isinstance(field, models.DateTimeField) and value is not None:
            assert abs(timezone.now() - value) < timedelta(minutes=5), (field.name, value)
            value = "recent"
        values[field.attname] = value
    return values


def same_but(raw: models.Model, orm: models.Model, *differing: str) -> None:
    raw_columns, orm_columns = columns(raw), columns(orm)
    for name in differing:
        raw_columns.pop(name), orm_columns.pop(name)
    assert raw_columns == orm_columns


def test_a_repository_row_is_the_orms() -> None:
    raw = Repository.objects.get(id=repositories.create("raw/app"))
    same_but(raw, Repository.objects.create(name="orm/app"), "name")
    assert repositories.get_or_create("raw/app").id == raw.id


def test_blob_and_link_rows_are_the_orms() -> None:
    raw = blobs.record("sha256:" + "a" * 64, 3, "blobs/a")
    orm = Blob.objects.create(digest="sha256:" + "b" * 64, size=3, key="blobs/a")
    same_but(raw, orm, "digest")

    repository = Repository.objects.create(name="team/app")
    blobs.link(repository.id, [raw.id])
    orm_link = RepositoryBlob.objects.create(repository=repository, blob=orm)
    same_but(RepositoryBlob.objects.get(blob=raw), orm_link, "blob_id")


def test_manifest_reference_and_tag_rows_are_the_orms() -> None:
    repository = Repository.objects.create(name="team/app")
    parsed = ParsedManifest(
        media_type="application/vnd.oci.image.manifest.v1+json",
        artifact_type="",
        subject="",
        annotations={"a": "b"},
        blobs={},
        children=[],
    )
    raw = Manifest.objects.get(id=manifests.insert(repository.id, "sha256:" + "1" * 64, b"{}", parsed))
    orm = Manifest.objects.create(
        repository=repository,
        digest="sha256:" + "2" * 64,
        media_type=parsed.media_type,
        size=2,
        content=b"{}",
        annotations={"a": "b"},
    )
    same_but(raw, orm, "digest")

    blob = Blob.objects.create(digest="sha256:" + "b" * 64, size=3, key="k")
    manifests.link_references(raw.id, [blob.id], [orm.id])
    same_but(
        ManifestBlob.objects.get(manifest=raw),
        ManifestBlob.objects.create(manifest=orm, blob=blob),
        "manifest_id",
    )
    orm_child = ManifestChild.objects.create(parent=orm, child=raw)
    same_but(ManifestChild.objects.get(parent=raw), orm_child, "parent_id", "child_id")

    manifests.record_absent(raw.id, ["sha256:" + "c" * 64], [])
    orm_absent = AbsentReference.objects.create(
        manifest=orm, digest="sha256:" + "c" * 64, kind=AbsentReference.BLOB
    )
    same_but(AbsentReference.objects.get(manifest=raw), orm_absent, "manifest_id")

    manifests.point_tag(repository.id, "v1", raw.id)
    same_but(
        Tag.objects.get(name="v1"), Tag.objects.create(repository=repository, name="v2", manifest=raw), "name"
    )
    before = Tag.objects.get(name="v1").updated
    manifests.point_tag(repository.id, "v1", orm.id)  # the upsert moves every column but the key
    moved = Tag.objects.get(name="v1")
    assert (moved.manifest_id, moved.updated > before) == (orm.id, True)


def test_an_upload_row_is_the_orms() -> None:
    repository = Repository.objects.create(name="team/app")
    session = Upload(hash_state=b"state", storage_state={"parts": []})
    assert uploads.insert(session, "team/app") == repository.id
    orm = Upload.objects.create(repository=repository, hash_state=b"state", storage_state={"parts": []})
    same_but(Upload.objects.get(id=session.id), orm)
    found = uploads.find("team/app", session.id.hex)
    assert (found.offset, found.storage_state, found.claim, found.repository.name) == (
        0,
        {"parts": []},
        None,
        "team/app",
    )
    assert found.created == Upload.objects.get(id=session.id).created


@isolate_apps("registry")
def test_a_field_added_to_a_model_is_in_the_next_statement_with_its_default() -> None:
    class Widget(models.Model):
        name = models.CharField(max_length=10)
        colour = models.CharField(max_length=10, default="blue", db_column="hue")
        created = models.DateTimeField(default=timezone.now)

        class Meta:
            app_label = "registry"

        def __str__(self) -> str:
            return self.name

    insert = Insert(Widget)
    assert insert.values(rows=2).endswith("VALUES (%s, %s, %s), (%s, %s, %s)")
    assert '"hue"' in insert.values() and '"id"' not in insert.values()
    row = insert.row({"name": "w"})
    assert row["colour"] == "blue" and timezone.now() - row["created"] < timedelta(minutes=1)
    with pytest.raises(TypeError):
        insert.row({})  # no name, and no default for it: refused before the database sees it


def sql_literals(source: str) -> list[str]:
    """The string constants of a module that are SQL (not docstrings, not messages)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and SQL_KEYWORD.search(node.value)
    ]


def hand_written_names(source: str) -> list[str]:
    """Table and column names, and defaults, that a module's SQL spells out instead of taking from
    ``_meta``."""
    names = set()
    for model in apps.get_app_config("registry").get_models():
        names.add(model._meta.db_table)
        names.update(field.column for field in model._meta.concrete_fields)
    found = [
        f"{name} in {literal!r}"
        for literal in sql_literals(source)
        for name in sorted(names)
        if re.search(rf"\b{re.escape(name)}\b", literal)
    ]
    if re.search(r"import timezone|timezone\.now\(", source):
        found.append("a default (timezone.now) written by hand")
    return found


@pytest.mark.parametrize("module", sorted(path.name for path in DB.glob("*.py")))
def test_no_statement_spells_a_column_or_default_by_hand(module: str) -> None:
    assert hand_written_names((DB / module).read_text()) == []


def test_the_check_sees_a_hand_written_column_list() -> None:
    hand_written = (
        'from django.utils import timezone\nSQL = f"INSERT INTO {t} (name, created) VALUES (%s, %s)"\n'
    )
    assert hand_written_names(hand_written) == [
        "created in ' (name, created) VALUES (%s, %s)'",
        "name in ' (name, created) VALUES (%s, %s)'",
        "a default (timezone.now) written by hand",
    ]
