"""``manage.py gc`` empties mirrored repositories nobody pulled for their upstream's ``unused_days``.

The images are pushed before their upstream exists (a push into a mirrored
prefix is refused), then backdated, as a pull-through would have stored them
weeks ago. Only the unused mirror loses its tags, manifests and the blobs no
other manifest references; the next pull would fill it again. The upstreams'
URLs lead nowhere and the emptied repositories are checked in the database
and the store: a pull there would go upstream. Kept mirrors are pulled by
digest, which never asks the upstream.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from registry.gc import collect as gc
from registry.gc import mirrored
from registry.gc.report import human_size
from registry.mirror.models import MirroredRepository, Upstream
from registry.models import Blob, Manifest, Repository, RepositoryBlob, Tag
from registry.storage import blob_store
from tests import oci
from tests.server import free_port
from tests.test_gc import assert_image_pulls

pytestmark = pytest.mark.django_db

STALE, FRESH, NEVER = "docker.io/library/alpine", "docker.io/library/debian", "docker.io/library/busybox"
KEPT_FOREVER, LOCAL = "ghcr.io/owner/tool", "team/app"
SHARED = oci.layer("shared-base-layer", 256)
LONG_AGO = timezone.now() - timedelta(days=40)


def image(seed: str) -> oci.Image:
    config, own = oci.config(seed), oci.layer(f"{seed}-own-layer", 512)
    return oci.Image(config, (SHARED, own), oci.image_manifest(config, (SHARED, own)))


@pytest.fixture
def images(client: Client) -> dict[str, oci.Image]:
    pushed = {name: image(name) for name in (STALE, FRESH, NEVER, KEPT_FOREVER, LOCAL)}
    for name, each in pushed.items():
        oci.push_image(client, name, each, "latest")
    for model, column in (
        (Manifest, "created"),
        (Blob, "created"),
        (RepositoryBlob, "created"),
        (Tag, "updated"),
    ):
        model.objects.update(**{column: LONG_AGO})
    Repository.objects.update(created=LONG_AGO)
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    hub = Upstream.objects.create(prefix="docker.io", url=nowhere, unused_days=30)
    ghcr = Upstream.objects.create(prefix="ghcr.io", url=nowhere)  # no unused_days: kept forever
    now = timezone.now()
    mirror(STALE, hub, last_pulled=now - timedelta(days=31), last_synced=LONG_AGO)
    mirror(FRESH, hub, last_pulled=now - timedelta(days=1), last_synced=LONG_AGO)
    mirror(NEVER, hub)  # never pulled nor synced: as old as the repository
    mirror(KEPT_FOREVER, ghcr, last_pulled=LONG_AGO)
    return pushed


def mirror(name: str, upstream: Upstream, **times: object) -> None:
    MirroredRepository.objects.create(
        repository=Repository.objects.get(name=name), upstream=upstream, **times
    )


def own_bytes(*images: oci.Image) -> int:
    return sum(each.config.size + each.layers[1].size for each in images)


def collect(**options: object) -> gc.GcReport:
    return gc.collect(gc.GcOptions(grace_period=timedelta(hours=1), **options))


@pytest.mark.all_backends
def test_it_empties_unused_mirrors_only_and_frees_what_nothing_else_uses(
    client: Client, images: dict[str, oci.Image]
) -> None:
    keys = {name: Blob.objects.get(digest=each.layers[1].digest).key for name, each in images.items()}
    report = collect()
    assert [mirror.name for mirror in report.mirrors] == [STALE, NEVER]  # by name
    assert (report.tags, report.manifests, report.blobs) == (2, 2, 4)
    assert report.mirrors_bytes == report.bytes == own_bytes(images[STALE], images[NEVER])
    for name in (STALE, NEVER):
        assert not Manifest.objects.filter(repository__name=name).exists()
        assert not Tag.objects.filter(repository__name=name).exists()
        assert not Blob.objects.filter(digest=images[name].layers[1].digest).exists()
        assert not blob_store().exists(keys[name])
        assert Repository.objects.filter(name=name).exists()  # the next pull fills it again
        assert MirroredRepository.objects.filter(repository__name=name).exists()
    for name in (FRESH, KEPT_FOREVER, LOCAL):
        assert_image_pulls(client, name, images[name])  # by digest, the shared layer included
        assert blob_store().exists(keys[name])
    assert collect().mirrors == []  # nothing left to empty


def test_a_dry_run_says_the_same_and_changes_nothing(client: Client, images: dict[str, oci.Image]) -> None:
    out = StringIO()
    call_command("gc", "--dry-run", stdout=out)
    size = human_size(own_bytes(images[STALE], images[NEVER]))
    assert (
        out.getvalue()
        .splitlines()[-1]
        .startswith(
            f"gc would delete 2 tags, 2 manifests, 4 blobs, 0 unknown objects: {size}"
            f" (of which 2 mirrored repositories unused for 30 days: {size}) in "
        )
    )
    # Checked in the tables and the store: a pull would record a use, and the mirror would be kept.
    assert Manifest.objects.filter(repository__name=STALE, digest=images[STALE].manifest.digest).exists()
    assert blob_store().exists(Blob.objects.get(digest=images[STALE].layers[1].digest).key)
    assert Tag.objects.filter(repository__name=STALE).exists()
    out = StringIO()
    call_command("gc", stdout=out)
    assert out.getvalue().startswith(
        f"gc deleted 2 tags, 2 manifests, 4 blobs, 0 unknown objects: {size} (of"
    )


def test_the_grace_period_keeps_what_was_stored_recently(
    client: Client, images: dict[str, oci.Image]
) -> None:
    Manifest.objects.filter(repository__name=STALE).update(created=timezone.now())
    report = collect(repository=STALE)
    assert ([mirror.name for mirror in report.mirrors], report.tags, report.manifests) == ([STALE], 1, 0)
    assert_image_pulls(client, STALE, images[STALE])
    assert Manifest.objects.filter(repository__name=NEVER).exists()  # another repository: not asked


def test_a_pull_since_the_plan_keeps_the_tags(images: dict[str, oci.Image]) -> None:
    now = timezone.now()
    plan = mirrored.plan(now)
    MirroredRepository.objects.filter(repository__name=STALE).update(last_pulled=now)
    done = mirrored.apply(plan, now)
    assert [mirror.name for mirror in done.repositories] == [NEVER]
    assert Tag.objects.filter(repository__name=STALE).exists()
    assert not Tag.objects.filter(repository__name=NEVER).exists()


def test_the_report_names_the_range_of_unused_days() -> None:
    emptied = [mirrored.UnusedRepository(n, f"m/{n}", days, LONG_AGO) for n, days in enumerate((30, 7, 30))]
    assert mirrored.describe(emptied, 2048) == (
        " (of which 3 mirrored repositories unused for 7 to 30 days: 2.0 KiB (2048 bytes))"
    )
    assert (
        mirrored.describe(emptied[:1], 10) == " (of which 1 mirrored repository unused for 30 days: 10 bytes)"
    )
    assert mirrored.describe([], 0) == ""
