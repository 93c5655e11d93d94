"""Kind and platforms of a batch of manifests, read in one query whatever their number."""

from collections.abc import Iterable

from registry.console import content
from registry.models import Manifest


def describe(manifests: Iterable[Manifest]) -> None:
    """Set ``kind``, ``platforms`` (a list of ``os/arch[/variant]``) and ``image_size`` on each manifest.

    An index's platforms are in its own bytes; an image's in its config blob,
    read once per config (``content.config_summaries``). The sizes are summed
    in SQL for these manifests only: as an annotation of a page's query they
    would be computed for every row an OFFSET skips too.
    """
    manifests = list(manifests)
    sizes = Manifest.objects.image_sizes([manifest.pk for manifest in manifests]) if manifests else {}
    documents = {manifest.pk: content.document(manifest.content) for manifest in manifests}
    configs = [
        descriptor
        for manifest in manifests
        if (descriptor := content.config_descriptor(documents[manifest.pk])) is not None
    ]
    summaries = content.config_summaries(configs)
    for manifest in manifests:
        document = documents[manifest.pk]
        manifest.kind = content.kind(manifest.media_type, manifest.artifact_type)  # type: ignore[attr-defined]
        manifest.platforms = _platforms(document, summaries)  # type: ignore[attr-defined]
        manifest.image_size = sizes.get(manifest.pk, 0)  # type: ignore[attr-defined]


def _platforms(document: dict, summaries: dict[str, content.ConfigSummary]) -> list[str]:
    if "manifests" in document:
        return content.index_platforms(document)
    descriptor = content.config_descriptor(document)
    summary = summaries.get(descriptor["digest"]) if descriptor else None
    return [summary.platform] if summary is not None and summary.platform else []
