"""The operator's view: browse repositories, tags, manifests and blobs; delete tags.

Content is written by pushes only: manifests and blobs are read-only here,
tags can be deleted (a tag delete is what an operator does to retire an image;
``manage.py gc`` frees what nothing references any more).
"""

import json

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from registry.models import (
    AbsentReference,
    Blob,
    Manifest,
    Repository,
    RepositoryBlob,
    RetentionRule,
    Tag,
    Upload,
)


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
        "absent_references",
        "pretty_content",
    ]

    @admin.display(description="absent references")
    def absent_references(self, manifest: Manifest) -> str:
        """What the manifest names that its repository lacked when it was pushed (``registry.sparse``).

        An absent child manifest's row goes when the child is pushed; an absent blob's stays, so whether
        the blob is in the repository now is looked up.
        """
        rows = list(manifest.absent_references.order_by("kind", "digest").values_list("kind", "digest"))
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


from registry.events import admin as events_admin  # noqa: E402, F401 - the audit log and webhooks
