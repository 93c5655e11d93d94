"""Manifests: the exact JSON, what the image is (config, layers, platforms), and what points at it.

Each section of the page is one query whatever the number of layers, children,
tags or referrers; the long lists stop at ``sections.SHOWN`` rows and link to the whole
list. Manifests are immutable: nothing here edits one.
"""

from collections import defaultdict
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from registry import references
from registry.console import content, formatting, images, listing, sections
from registry.console.tags import manifest_url, repository_url
from registry.models import AbsentReference, Blob, Manifest, RepositoryBlob, Tag


def blob_url(blob_id: int) -> str:
    return reverse("admin:registry_blob_change", args=[blob_id])


def _manifests_url(**lookups: object) -> str:
    return f"{reverse('admin:registry_manifest_changelist')}?{urlencode(lookups)}"


def tags_of_url(manifest: Manifest) -> str:
    return f"{reverse('admin:registry_tag_changelist')}?manifest__id__exact={manifest.pk}"


def _describe_page(manifests: list[Manifest], request: HttpRequest) -> None:
    images.describe(manifests)


class ManifestAdmin(admin.ModelAdmin):
    list_display = ["short_digest", "repository_link", "kind", "platforms", "manifest_size", "created"]
    list_select_related = ["repository"]
    list_per_page = 50
    show_full_result_count = False
    search_fields = ["repository__name"]
    search_help_text = "a digest prefix (sha256:ab12...), or a repository name"
    ordering = ["-id"]
    fieldsets = [
        (None, {"fields": ["summary", "pull"]}),
        ("Image", {"fields": ["config_summary", "layer_table", "child_table", "absent"]}),
        ("What points at it", {"fields": ["tag_list", "parent_list", "referrer_list", "subject_link"]}),
        ("Content", {"fields": ["pretty_content"]}),
    ]
    readonly_fields = [
        "summary",
        "pull",
        "config_summary",
        "layer_table",
        "child_table",
        "absent",
        "tag_list",
        "parent_list",
        "referrer_list",
        "subject_link",
        "pretty_content",
    ]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return listing.changelist_describing(_describe_page)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple:
        prefix = references.digest_prefix(search_term)
        if prefix is not None:
            return queryset.filter(digest__startswith=prefix), False
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # delete its tags; gc removes untagged manifests by the retention rules

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": "Manifests", **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        manifest = self.get_object(request, object_id)
        title = f"{manifest.repository.name}@{formatting.short_digest(manifest.digest)}" if manifest else ""
        return super().change_view(request, object_id, form_url, {"title": title, **(extra_context or {})})

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """Read once per request, with its kind, platforms and config summary."""
        cached = getattr(request, "_crow_manifest", None)
        if cached is not None and str(cached.pk) == object_id:
            return cached
        manifest = super().get_object(request, object_id, from_field)
        if manifest is not None:
            images.describe([manifest])
            manifest.host = request.get_host()
            manifest.document = content.document(manifest.content)
            descriptor = content.config_descriptor(manifest.document)
            summaries = content.config_summaries([descriptor] if descriptor else [])
            manifest.config = summaries.get(descriptor["digest"]) if descriptor else None
            request._crow_manifest = manifest  # type: ignore[attr-defined]
        return manifest

    # --- the list ---

    @admin.display(description="digest", ordering="digest")
    def short_digest(self, manifest: Manifest) -> str:
        return formatting.digest_html(manifest.digest)

    @admin.display(description="repository", ordering="repository__name")
    def repository_link(self, manifest: Manifest) -> str:
        return format_html(
            '<a href="{}">{}</a>', repository_url(manifest.repository_id), manifest.repository.name
        )

    @admin.display(description="kind")
    def kind(self, manifest: Manifest) -> str:
        return manifest.kind  # type: ignore[attr-defined]

    @admin.display(description="platforms")
    def platforms(self, manifest: Manifest) -> str:
        return ", ".join(manifest.platforms) or "-"  # type: ignore[attr-defined]

    @admin.display(description="image size")
    def manifest_size(self, manifest: Manifest) -> str:
        return formatting.size_html(manifest.image_size)  # type: ignore[attr-defined]

    # --- the page ---

    @admin.display(description="manifest")
    def summary(self, manifest: Manifest) -> SafeString:
        rows = [
            (
                "repository",
                format_html(
                    '<a href="{}">{}</a>', repository_url(manifest.repository_id), manifest.repository.name
                ),
            ),
            ("digest", format_html("<code>{}</code>", manifest.digest)),
            ("media type", manifest.media_type),
            ("kind", manifest.kind),  # type: ignore[attr-defined]
            ("platforms", ", ".join(manifest.platforms) or "-"),  # type: ignore[attr-defined]
            ("image size", formatting.size_html(manifest.image_size)),  # type: ignore[attr-defined]
            ("manifest size", formatting.size_html(manifest.size)),
            ("pushed", formats.localize(timezone.localtime(manifest.created))),
        ]
        return sections.definitions(rows)

    @admin.display(description="pull")
    def pull(self, manifest: Manifest) -> SafeString:
        host = manifest.host
        return formatting.copyable(formatting.pull_reference(host, manifest.repository.name, manifest.digest))

    @admin.display(description="config")
    def config_summary(self, manifest: Manifest) -> SafeString | str:
        summary = manifest.config  # type: ignore[attr-defined]
        if summary is None:
            return "-"
        if not summary.readable:
            return "the config blob could not be read"
        labels = format_html_join("", "<li><code>{}</code> = {}</li>", sorted(summary.labels.items()))
        env = format_html_join("", "<li><code>{}</code></li>", ((line,) for line in summary.env))
        return sections.definitions(
            [
                ("platform", summary.platform or "-"),
                ("created", summary.created or "-"),
                (
                    "entrypoint",
                    format_html("<code>{}</code>", " ".join(summary.entrypoint))
                    if summary.entrypoint
                    else "-",
                ),
                ("cmd", format_html("<code>{}</code>", " ".join(summary.cmd)) if summary.cmd else "-"),
                ("env", format_html("<ul>{}</ul>", env) if summary.env else "-"),
                ("labels", format_html("<ul>{}</ul>", labels) if summary.labels else "-"),
                ("history", f"{summary.history} steps"),
            ]
        )

    @admin.display(description="layers")
    def layer_table(self, manifest: Manifest) -> SafeString | str:
        config = content.config_descriptor(manifest.document)  # type: ignore[attr-defined]
        numbered = [(str(number), layer) for number, layer in enumerate(content.layers(manifest.document), 1)]  # type: ignore[attr-defined]
        descriptors = ([("config", config)] if config else []) + numbered
        if not descriptors:
            return "-"
        digests = [descriptor["digest"] for _, descriptor in descriptors]
        ids = dict(Blob.objects.filter(digest__in=digests).values_list("digest", "id"))
        rows = [
            (
                label,
                str(descriptor.get("mediaType", "")),
                formatting.size_html(_size(descriptor)),
                formatting.digest_html(descriptor["digest"], _blob_link(ids, descriptor["digest"])),
            )
            for label, descriptor in descriptors
        ]
        return sections.table(("layer", "media type", "size", "digest"), rows)

    @admin.display(description="children (platforms)")
    def child_table(self, manifest: Manifest) -> SafeString | str:
        entries = content.children(manifest.document)  # type: ignore[attr-defined]
        if not entries:
            return "-"
        present = Manifest.objects.with_image_size().filter(
            repository_id=manifest.repository_id, digest__in=[entry["digest"] for entry in entries]
        )
        found = {child.digest: child for child in present.only("id", "digest")}
        rows = []
        for entry in entries:
            child = found.get(entry["digest"])
            link = formatting.digest_html(entry["digest"], manifest_url(child.pk) if child else None)
            size = formatting.size_html(child.image_size) if child else "absent from the repository"
            rows.append(
                (
                    content.platform_name(entry.get("platform")) or "-",
                    str(entry.get("mediaType", "")),
                    size,
                    link,
                )
            )
        return sections.table(("platform", "media type", "image size", "digest"), rows)

    @admin.display(description="absent references")
    def absent(self, manifest: Manifest) -> SafeString | str:
        """What the manifest names that its repository lacked when it was pushed (``registry.sparse``).

        An absent child manifest's row goes when the child is pushed; an absent blob's stays, so whether
        the blob is in the repository now is looked up.
        """
        rows = list(
            manifest.absent_references.order_by("kind", "digest").values_list("kind", "digest")[
                : sections.SHOWN
            ]
        )
        if not rows:
            return "none"
        arrived = set(
            RepositoryBlob.objects.filter(
                repository_id=manifest.repository_id, blob__digest__in=[digest for _, digest in rows]
            ).values_list("blob__digest", flat=True)
        )

        def state(kind: str, digest: str) -> str:
            return "present now" if kind == AbsentReference.BLOB and digest in arrived else "absent"

        items = ((kind, digest, state(kind, digest)) for kind, digest in rows)
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} {}: <strong>{}</strong></li>", items))

    @admin.display(description="tags")
    def tag_list(self, manifest: Manifest) -> SafeString | str:
        tags, more = sections.limited(
            Tag.objects.filter(manifest=manifest).order_by("name").values_list("name", flat=True)
        )
        if not tags:
            return "none"
        host, name = manifest.host, manifest.repository.name
        items = format_html_join(
            "",
            "<li>{} {}</li>",
            ((tag, formatting.copyable(formatting.pull_reference(host, name, tag))) for tag in tags),
        )
        extra = sections.more(more, tags_of_url(manifest))
        return format_html('<ul class="crow-tags">{}</ul>{}', items, extra)

    @admin.display(description="in indexes")
    def parent_list(self, manifest: Manifest) -> SafeString | str:
        parents, more = sections.limited(manifest.parents.order_by("digest").values_list("id", "digest"))
        if not parents:
            return "none"
        items = format_html_join(
            "", "<li>{}</li>", ((formatting.digest_html(digest, manifest_url(pk)),) for pk, digest in parents)
        )
        return format_html(
            "<ul>{}</ul>{}", items, sections.more(more, _manifests_url(children__id__exact=manifest.pk))
        )

    @admin.display(description="referrers")
    def referrer_list(self, manifest: Manifest) -> SafeString | str:
        """Signatures, SBOMs, attestations: manifests whose subject is this one, by artifact type."""
        found, more = sections.limited(
            Manifest.objects.referrers(manifest.repository.name, manifest.digest, None)
            .order_by("artifact_type", "digest")
            .values_list("id", "digest", "artifact_type", "media_type")
        )
        if not found:
            return "none"
        groups: dict[str, list] = defaultdict(list)
        for pk, digest, artifact_type, media_type in found:
            groups[artifact_type or content.kind(media_type, "")].append(
                (formatting.digest_html(digest, manifest_url(pk)),)
            )
        grouped = format_html_join(
            "",
            "<li><strong>{}</strong> ({})<ul>{}</ul></li>",
            ((kind, len(rows), format_html_join("", "<li>{}</li>", rows)) for kind, rows in groups.items()),
        )
        return format_html(
            "<ul>{}</ul>{}",
            grouped,
            sections.more(
                more, _manifests_url(repository__id__exact=manifest.repository_id, subject=manifest.digest)
            ),
        )

    @admin.display(description="subject")
    def subject_link(self, manifest: Manifest) -> SafeString | str:
        if not manifest.subject:
            return "none"
        subject = (
            Manifest.objects.filter(repository_id=manifest.repository_id, digest=manifest.subject)
            .values_list("id", flat=True)
            .first()
        )
        url = manifest_url(subject) if subject is not None else None
        return format_html(
            "{}{}", formatting.digest_html(manifest.subject, url), "" if url else " (not in the repository)"
        )

    @admin.display(description="content (exact JSON, pretty-printed)")
    def pretty_content(self, manifest: Manifest) -> SafeString:
        return format_html('<pre class="crow-json">{}</pre>', content.pretty(manifest.content))


def _size(descriptor: dict[str, Any]) -> int | None:
    size = descriptor.get("size")
    return size if isinstance(size, int) else None


def _blob_link(ids: dict[str, int], digest: str) -> str | None:
    return blob_url(ids[digest]) if digest in ids else None
