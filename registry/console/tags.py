"""Tags: a repository's page is this list filtered to it, with the image each tag points at.

Deleting tags here is the registry's delete (``registry.deletions.delete_tag``,
as the API's DELETE): the same switch (``CROW_DELETE_ENABLED``), the same rows
removed, the same change notices to the fast path's cache.
"""

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from registry import deletions, references
from registry.console import formatting, images, listing
from registry.console.visibility import Visibility
from registry.maintenance import readonly
from registry.mirror.models import MirroredRepository
from registry.models import Manifest, Repository, Tag

REPOSITORY_FILTER = "repository__id__exact"
PAGE_SIZE = 50


def manifest_url(manifest_id: int) -> str:
    return reverse("admin:registry_manifest_change", args=[manifest_id])


def repository_url(repository_id: int) -> str:
    """A repository's page: its tags."""
    return f"{reverse('admin:registry_tag_changelist')}?{REPOSITORY_FILTER}={repository_id}"


def _describe_page(tags: list[Tag], request: HttpRequest) -> None:
    """The page's manifests and repositories, each in one query: joined in the page's own query, they
    would be joined for every row an OFFSET skips too (half a second at page 1,000)."""
    manifests = Manifest.objects.in_bulk({tag.manifest_id for tag in tags})
    repositories = Repository.objects.in_bulk({tag.repository_id for tag in tags})
    host = request.get_host()
    for tag in tags:
        tag.manifest = manifests[tag.manifest_id]
        tag.repository = repositories[tag.repository_id]
        tag.host = host  # type: ignore[attr-defined]
    images.describe(manifests.values())


class TagAdmin(admin.ModelAdmin):
    list_display = ["tag", "digest", "kind", "platforms", "size", "pushed", "pull"]
    list_display_links = ["tag"]
    list_select_related = False  # see _describe_page
    actions = ["delete_selected"]
    list_per_page = PAGE_SIZE
    # Counting every tag of every repository on each page is the slow part of a changelist: skip it.
    show_full_result_count = False
    ordering = ["repository_id", "name"]  # the unique index (repository, name) serves it with LIMIT
    search_fields = ["name"]
    search_help_text = "a tag name, or a digest prefix (sha256:ab12...) of the manifest it points at"
    readonly_fields = ["repository_link", "name", "manifest_link", "updated", "pull"]
    fields = readonly_fields
    delete_selected_confirmation_template = "admin/registry/tag/delete_selected_confirmation.html"
    delete_confirmation_template = "admin/registry/tag/delete_confirmation.html"
    change_list_template = "admin/registry/tag/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return Tag.objects.all()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return listing.changelist_describing(_describe_page)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple:
        prefix = references.digest_prefix(search_term)
        found, duplicates = super().get_search_results(request, queryset, search_term)
        if prefix is None:
            return found, duplicates
        return found | queryset.filter(manifest__digest__startswith=prefix), duplicates

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # a tag moves by a push, never by hand

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Read-only mode (registry.maintenance): the buttons go, and a delete confirmed after it began is
        # refused by Django's own permission check.
        writable = settings.CROW_DELETE_ENABLED and not readonly.is_on()
        return writable and super().has_delete_permission(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        context = {"title": "Tags", **(extra_context or {})}
        repository_id = request.GET.get(REPOSITORY_FILTER, "")
        if repository_id.isdigit():
            repository = Repository.objects.filter(pk=int(repository_id)).first()
            if repository is not None:
                context.update(repository_context(request, repository))
        return super().changelist_view(request, context)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple:
        """The confirmation lists the tags themselves (the template does): a tag has no dependents."""
        count = objs.count() if isinstance(objs, QuerySet) else len(objs)
        perms_needed = set() if self.has_delete_permission(request) else {"tag"}
        return [], {"tags": count}, perms_needed, []

    @admin.action(permissions=["delete"], description="Delete selected tags")
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Tag]) -> HttpResponse | None:
        """Django's bulk delete (confirmation, then ``delete_queryset``), its page listing the tags."""
        response = delete_selected(self, request, queryset.select_related("repository", "manifest"))
        if isinstance(response, TemplateResponse):  # the confirmation, not yet rendered
            response.context_data["title"] = "Delete tags"
        return response

    def delete_model(self, request: HttpRequest, obj: Tag) -> None:
        deletions.delete_tag(obj.repository.name, obj.name)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tag]) -> None:
        for name, tag in queryset.order_by().values_list("repository__name", "name").iterator():
            deletions.delete_tag(name, tag)

    @admin.display(description="tag", ordering="name")
    def tag(self, tag: Tag) -> str:
        return tag.name

    @admin.display(description="digest")
    def digest(self, tag: Tag) -> str:
        return formatting.digest_html(tag.manifest.digest, manifest_url(tag.manifest_id))

    @admin.display(description="kind")
    def kind(self, tag: Tag) -> str:
        return tag.manifest.kind  # type: ignore[attr-defined]

    @admin.display(description="platforms")
    def platforms(self, tag: Tag) -> str:
        return ", ".join(tag.manifest.platforms) or "-"  # type: ignore[attr-defined]

    @admin.display(description="image size")
    def size(self, tag: Tag) -> str:
        return formatting.size_html(tag.manifest.image_size)  # type: ignore[attr-defined]

    @admin.display(description="pushed at", ordering="updated")
    def pushed(self, tag: Tag) -> Any:
        return tag.updated

    @admin.display(description="pull")
    def pull(self, tag: Tag) -> str:
        host = getattr(tag, "host", None) or "HOST"
        name = tag.repository.name
        return format_html_join(
            "",
            "<div>{}</div>",
            (
                (formatting.copyable(formatting.pull_reference(host, name, tag.name)),),
                (formatting.copyable(formatting.pull_reference(host, name, tag.manifest.digest)),),
            ),
        )

    @admin.display(description="repository")
    def repository_link(self, tag: Tag) -> str:
        return format_html('<a href="{}">{}</a>', repository_url(tag.repository_id), tag.repository.name)

    @admin.display(description="manifest")
    def manifest_link(self, tag: Tag) -> str:
        return format_html(
            '<a href="{}"><code>{}</code></a>', manifest_url(tag.manifest_id), tag.manifest.digest
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        tag = self.get_object(request, object_id)
        if tag is not None:
            tag.host = request.get_host()  # type: ignore[attr-defined]
        context = {"title": f"Tag {tag}" if tag else "Tag", **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)


def repository_context(request: HttpRequest, repository: Repository) -> dict[str, Any]:
    """The header of a repository's page: what it costs and how to pull from it."""
    for figure, value in Repository.objects.usage([repository.pk])[repository.pk].items():
        setattr(repository, figure, value)
    return {
        "title": repository.name,
        "repository": repository,
        "repository_visibility": Visibility().of(repository.name),
        "repository_size": formatting.size_html(repository.stored_bytes),  # type: ignore[attr-defined]
        "repository_pull": formatting.copyable(f"{request.get_host()}/{repository.name}"),
        "repository_mirror": MirroredRepository.objects.select_related("upstream")
        .filter(repository=repository)
        .first(),
    }
