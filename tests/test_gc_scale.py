"""``manage.py gc``'s cost follows the garbage: as many statements for 20 repositories as for 2.

Each repository holds a tagged image (kept: a tag names it, and its index's
platform image) and an untagged one (garbage). The database is asked a number
of times that depends on neither the repositories nor the tags (until a batch
of 500 fills), while every repository's garbage is found.
"""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from registry.gc import collect as gc
from registry.models import RetentionRule
from tests import oci

pytestmark = pytest.mark.django_db


def fill(client: Client, repositories: range) -> None:
    for number in repositories:
        name = f"scale/r{number}"
        kept, garbage = oci.image(f"{name}-kept"), oci.image(f"{name}-garbage")
        oci.push_image(client, name, kept)
        oci.push_image(client, name, garbage)
        oci.push_manifest(client, name, "v1", oci.image_index([kept.manifest]))


def statements(**options: Any) -> tuple[int, gc.GcReport]:
    with CaptureQueriesContext(connection) as queries:
        report = gc.collect(gc.GcOptions(grace_period=timedelta(0), dry_run=True, **options))
    return len(queries), report


def test_the_untagged_phase_asks_as_often_for_many_repositories_as_for_few(client: Client) -> None:
    fill(client, range(2))
    few, report = statements(untagged=True)
    assert (report.manifests, report.blobs) == (2, 4)
    fill(client, range(2, 20))
    many, report = statements(untagged=True)
    assert (report.manifests, report.blobs) == (20, 40)
    assert many == few


def test_retention_rules_ask_as_often_for_many_repositories_as_for_few(client: Client) -> None:
    RetentionRule.objects.create(pattern="scale/*", keep_latest=0, untagged_after_days=0)
    fill(client, range(2))
    few, report = statements()
    assert (report.tags, report.manifests) == (2, 6)  # the index, then what only it kept
    fill(client, range(2, 20))
    many, report = statements()
    assert (report.tags, report.manifests) == (20, 60)
    assert many == few
