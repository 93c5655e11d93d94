"""Blobs: size, media type where a manifest says it, and which repositories and manifests use it.

Blobs are global and content-addressed; they go through garbage collection
only, never by hand.
"""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from registry import references
from registry.console import content, formatting, sections
from registry.console.tags import manifest_url, repository_url
from registry.models import Blob, Manifest, Repository


def media_type(blob: Blob) -> str:
    """The media type the first manifest referencing the blob gives it (one query), or ``unknown``."""
    manifest = Manifest.objects.filter(blobs=blob).only("content").first()
    if manifest is None:
        return "unknown (no manifest references it)"
    document = content.document(manifest.content)
    config = content.config_descriptor(document)
    for descriptor in ([config] if config else []) + content.layers(document):
        if descriptor["digest"] == blob.digest and isinstance(descriptor.get("mediaType"), str):
            return descriptor["mediaType"]
    return "unknown"


class BlobAdmin(admin.ModelAdmin):
    list_display = ["short_digest", "size_human", "created"]
    list_per_page = 100
    show_full_result_count = False
    search_fields = ["digest"]
    search_help_text = "a digest prefix (sha256:ab12...)"
    ordering = ["-id"]
    fields = ["digest", "size_exact", "kind", "key", "created", "repository_list", "manifest_list"]
    readonly_fields = fields

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple:
        prefix = references.digest_prefix(search_term)
        if prefix is not None:
            return queryset.filter(digest__startswith=prefix), False
        return queryset.filter(digest=search_term.strip()), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # blobs go through garbage collection, never by hand

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": "Blobs", **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        blob = self.get_object(request, object_id)
        title = f"Blob {formatting.short_digest(blob.digest)}" if blob else "Blob"
        return super().change_view(request, object_id, form_url, {"title": title, **(extra_context or {})})

    @admin.display(description="digest", ordering="digest")
    def short_digest(self, blob: Blob) -> SafeString:
        return formatting.digest_html(blob.digest)

    @admin.display(description="size", ordering="size")
    def size_human(self, blob: Blob) -> SafeString:
        return formatting.size_html(blob.size)

    @admin.display(description="size")
    def size_exact(self, blob: Blob) -> str:
        return f"{formatting.human_size(blob.size)} ({blob.size:,} bytes)"

    @admin.display(description="media type")
    def kind(self, blob: Blob) -> str:
        return media_type(blob)

    @admin.display(description="repositories")
    def repository_list(self, blob: Blob) -> SafeString | str:
        found, more = sections.limited(
            Repository.objects.filter(blobs=blob).order_by("name").values_list("id", "name")
        )
        if not found:
            return "none"
        items = format_html_join(
            "", '<li><a href="{}">{}</a></li>', ((repository_url(pk), name) for pk, name in found)
        )
        url = f"{reverse('admin:registry_repository_changelist')}?blobs__id__exact={blob.pk}"
        return format_html("<ul>{}</ul>{}", items, sections.more(more, url))

    @admin.display(description="manifests")
    def manifest_list(self, blob: Blob) -> SafeString | str:
        found, more = sections.limited(
            Manifest.objects.filter(blobs=blob)
            .order_by("repository__name", "digest")
            .values_list("id", "repository__name", "digest")
        )
        if not found:
            return "none"
        items = format_html_join(
            "",
            "<li>{} {}</li>",
            ((name, formatting.digest_html(digest, manifest_url(pk))) for pk, name, digest in found),
        )
        url = f"{reverse('admin:registry_manifest_changelist')}?blobs__id__exact={blob.pk}"
        return format_html("<ul>{}</ul>{}", items, sections.more(more, url))
