"""The admin's home: totals, the largest repositories, the latest pushes, each one query."""

from dataclasses import dataclass

from django.db.models import Sum
from django.http import HttpRequest

from registry.console import formatting, images
from registry.console.tags import manifest_url, repository_url
from registry.models import Blob, Manifest, Repository, RepositoryBlob, Tag, Upload

SHOWN = 10


@dataclass(frozen=True)
class Dashboard:
    totals: list[tuple[str, str]]
    largest: list[tuple[str, str, str]]  # name, url, human size (exact on hover)
    latest: list[dict]


def read(request: HttpRequest) -> Dashboard:
    return Dashboard(totals=_totals(), largest=_largest(), latest=_latest(request))


def _totals() -> list[tuple[str, str]]:
    stored = Blob.objects.aggregate(total=Sum("size"))["total"] or 0
    return [
        ("repositories", f"{Repository.objects.count():,}"),
        ("tags", f"{Tag.objects.count():,}"),
        ("manifests", f"{Manifest.objects.count():,}"),
        ("unique stored bytes", formatting.size_html(stored)),
        ("uploads in progress", f"{Upload.objects.count():,}"),
    ]


def _largest() -> list[tuple[str, str, str]]:
    """The repositories whose unique blobs weigh most: one GROUP BY over the links (their sizes are
    copied there), then their names; a name in the first query would be grouped by too."""
    rows = list(
        RepositoryBlob.objects.values("repository_id")
        .annotate(total=Sum("size"))
        .order_by("-total", "repository_id")[:SHOWN]
    )
    names = dict(
        Repository.objects.filter(pk__in=[row["repository_id"] for row in rows]).values_list("pk", "name")
    )
    return [
        (
            names[row["repository_id"]],
            repository_url(row["repository_id"]),
            formatting.size_html(row["total"]),
        )
        for row in rows
        if row["repository_id"] in names
    ]


def _latest(request: HttpRequest) -> list[dict]:
    tags = list(Tag.objects.latest(SHOWN))
    images.describe(tag.manifest for tag in tags)
    host = request.get_host()
    return [
        {
            "tag": tag,
            "repository_url": repository_url(tag.repository_id),
            "digest": formatting.digest_html(tag.manifest.digest, manifest_url(tag.manifest_id)),
            "platforms": ", ".join(tag.manifest.platforms) or tag.manifest.kind,  # type: ignore[attr-defined]
            "pull": formatting.copyable(formatting.pull_reference(host, tag.repository.name, tag.name)),
        }
        for tag in tags
    ]
