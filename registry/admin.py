"""The operator's view: browse repositories, tags, manifests and blobs; delete tags.

Content is written by pushes only: manifests and blobs are read-only here,
tags can be deleted (a tag delete is what an operator does to retire an image;
``manage.py gc`` frees what nothing references any more).
"""

import json

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from registry.models import Blob, Manifest, Repository, RetentionRule, Tag, Upload


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class TagInline(admin.TabularInline):
    model = Tag
    fields = ["name", "manifest_digest", "updated"]
    readonly_fields = fields
    extra = 0
    can_delete = True
    show_change_link = True

    @admin.display(description="manifest")
    def manifest_digest(self, tag: Tag) -> str:
        return tag.manifest.digest

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).select_related("manifest").order_by("name")


@admin.register(Repository)
class RepositoryAdmin(ReadOnlyAdmin):
    list_display = ["name", "tag_count", "manifest_count", "created"]
    search_fields = ["name"]
    readonly_fields = ["name", "created"]
    fields = readonly_fields
    inlines = [TagInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Repository]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                tag_count=Count("tags", distinct=True), manifest_count=Count("manifests", distinct=True)
            )
        )

    @admin.display(description="tags", ordering="tag_count")
    def tag_count(self, repository: Repository) -> int:
        return repository.tag_count  # type: ignore[attr-defined]

    @admin.display(description="manifests", ordering="manifest_count")
    def manifest_count(self, repository: Repository) -> int:
        return repository.manifest_count  # type: ignore[attr-defined]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The change page is where the tag inline's delete boxes are.
        return request.user.has_perm("registry.delete_tag")


@admin.register(Tag)
class TagAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "manifest_digest", "updated"]
    list_select_related = ["repository", "manifest"]
    search_fields = ["name", "repository__name"]
    readonly_fields = ["repository", "name", "manifest", "updated"]

    @admin.display(description="manifest")
    def manifest_digest(self, tag: Tag) -> str:
        return tag.manifest.digest


@admin.register(Manifest)
class ManifestAdmin(ReadOnlyAdmin):
    list_display = ["digest", "repository", "media_type", "artifact_type", "size", "created"]
    list_select_related = ["repository"]
    list_filter = ["media_type"]
    search_fields = ["digest", "repository__name", "subject"]
    exclude = ["content", "annotations"]
    readonly_fields = [
        "repository",
        "digest",
        "media_type",
        "artifact_type",
        "size",
        "subject",
        "created",
        "pretty_content",
    ]

    @admin.display(description="content")
    def pretty_content(self, manifest: Manifest) -> str:
        try:
            text = json.dumps(json.loads(bytes(manifest.content)), indent=2)
        except ValueError:
            text = bytes(manifest.content).decode("utf-8", "replace")
        return format_html("<pre>{}</pre>", text)


@admin.register(Blob)
class BlobAdmin(ReadOnlyAdmin):
    list_display = ["digest", "size", "created"]
    search_fields = ["digest"]
    readonly_fields = ["digest", "size", "key", "created"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # blobs go through garbage collection, never by hand


@admin.register(Upload)
class UploadAdmin(ReadOnlyAdmin):
    list_display = ["id", "repository", "offset", "created", "updated"]
    list_select_related = ["repository"]
    exclude = ["hash_state", "storage_state"]
    readonly_fields = ["id", "repository", "offset", "claimed_until", "created", "updated"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # an upload's stored bytes are freed by purge_uploads, not by deleting the row


@admin.register(RetentionRule)
class RetentionRuleAdmin(admin.ModelAdmin):
    """Rules that ``manage.py gc`` applies: preview them with ``manage.py gc --dry-run``."""

    list_display = [
        "pattern",
        "tag_pattern",
        "keep_latest",
        "max_age_days",
        "untagged_after_days",
        "protected_tags",
        "enabled",
    ]
    list_filter = ["enabled"]
    search_fields = ["pattern", "tag_pattern"]
    readonly_fields = ["created"]
