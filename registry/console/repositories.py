"""Repositories: what each holds and costs (unique stored bytes, tags, last push), and who may pull it.

A repository's own page is its tags (``registry.console.tags``): its change
URL leads there. A repository goes when its tags go and ``manage.py gc``
collects what nothing references; the admin never deletes one row by row.
"""

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ORDER_VAR, SEARCH_VAR, ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html

from registry import references
from registry.console import formatting, listing
from registry.console.tags import repository_url
from registry.console.upstreams import mirrors_of
from registry.console.visibility import Visibility
from registry.models import USAGE, Repository

PAGE_SIZE = 100
# The columns sorted by a figure of the repository's usage.
_FIGURE_OF = {"tags": "tag_count", "size": "stored_bytes", "last_push": "last_push"}


def _describe_page(repositories: list[Repository], request: HttpRequest) -> None:
    visibility = Visibility()
    # A figure the list is sorted by came with the rows already.
    missing = tuple(f for f in USAGE if not repositories or not hasattr(repositories[0], f))
    ids = [repository.pk for repository in repositories]
    usage = Repository.objects.usage(ids, missing) if repositories and missing else {}
    mirrors = mirrors_of(ids)
    for repository in repositories:
        repository.visibility = visibility.of(repository.name)  # type: ignore[attr-defined]
        repository.mirror = mirrors.get(repository.pk)  # type: ignore[attr-defined]
        for figure, value in usage.get(repository.pk, {}).items():
            setattr(repository, figure, value)


def _sorted_figures(request: HttpRequest, columns: list[str]) -> list[str]:
    """The figures of ``USAGE`` that the list's ``o`` parameter sorts by, in its order."""
    figures = []
    for part in request.GET.get(ORDER_VAR, "").split("."):
        number = part.removeprefix("-")
        if number.isdigit() and int(number) < len(columns):
            figure = _FIGURE_OF.get(columns[int(number)])
            if figure and figure not in figures:
                figures.append(figure)
    return figures


class RepositoryAdmin(admin.ModelAdmin):
    list_display = ["repository", "visibility", "tags", "size", "last_push", "mirrored_from", "last_pulled"]
    list_display_links = None
    list_per_page = PAGE_SIZE
    show_full_result_count = False
    search_fields = ["name"]
    search_help_text = "a name (or part of one), or a digest prefix (sha256:ab12...) of a manifest it holds"
    ordering = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Repository]:
        """The bare table, paged by name; the figures come for the page's rows (``_describe_page``),
        or, sorted by one of them, for every row."""
        figures = _sorted_figures(request, self.list_display)
        return Repository.objects.sorted_by(figures) if figures else Repository.objects.all()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return listing.changelist_describing(_describe_page)

    def get_paginator(
        self, request: HttpRequest, queryset: QuerySet, per_page: int, *args: Any, **kwargs: Any
    ) -> Any:
        """Sorted by a figure, the rows are grouped: count the matching rows of the bare table instead
        (the list has no filters; the search is the only condition)."""
        paginator = super().get_paginator(request, queryset, per_page, *args, **kwargs)
        if _sorted_figures(request, self.list_display):
            term = request.GET.get(SEARCH_VAR, "")
            paginator.count = self.get_search_results(request, Repository.objects.all(), term)[0].count()
        return paginator

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple:
        prefix = references.digest_prefix(search_term)
        if prefix is not None and ":" in search_term:  # no repository name has a colon
            return queryset.having_manifest(prefix), False
        found, duplicates = super().get_search_results(request, queryset, search_term)
        if prefix is None:
            return found, duplicates
        return found | queryset.having_manifest(prefix), duplicates

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": "Repositories", **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """A repository's page is the list of its tags."""
        if not object_id.isdigit() or not self.has_view_or_change_permission(request):
            return super().change_view(request, object_id, form_url, extra_context)
        return HttpResponseRedirect(repository_url(int(object_id)))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # delete its tags (a registry delete); gc removes the rest

    @admin.display(description="repository", ordering="name")
    def repository(self, repository: Repository) -> str:
        return format_html('<a href="{}">{}</a>', repository_url(repository.pk), repository.name)

    @admin.display(description="visibility")
    def visibility(self, repository: Repository) -> str:
        return repository.visibility  # type: ignore[attr-defined]

    @admin.display(description="tags", ordering="tag_count")
    def tags(self, repository: Repository) -> int:
        return repository.tag_count  # type: ignore[attr-defined]

    @admin.display(description="stored size", ordering="stored_bytes")
    def size(self, repository: Repository) -> str:
        return formatting.size_html(repository.stored_bytes)  # type: ignore[attr-defined]

    @admin.display(description="last push", ordering="last_push")
    def last_push(self, repository: Repository) -> Any:
        return repository.last_push  # type: ignore[attr-defined]

    @admin.display(description="mirrored from")
    def mirrored_from(self, repository: Repository) -> str:
        mirror = repository.mirror  # type: ignore[attr-defined]
        return "-" if mirror is None else mirror.upstream.prefix

    @admin.display(description="last pulled")
    def last_pulled(self, repository: Repository) -> Any:
        mirror = repository.mirror  # type: ignore[attr-defined]
        return "-" if mirror is None else mirror.last_pulled or "never"
