"""Upstreams of the pull-through cache: what each mirrors, how CRoW signs in (never the secret), and when.

The password is write-only: the form never shows it, left blank it keeps the
stored one, and a box removes it. Upstreams from ``CROW_UPSTREAMS`` are shown
read-only (``registry.mirror.environment`` rewrites them at each start).
"""

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import SEARCH_VAR
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from crow.env import format_duration
from registry.mirror.models import MirroredRepository, Upstream

EDITABLE = ["prefix", "url", "username", "password", "remove_password"]
SETTINGS = ["tag_trust_seconds", "repositories", "unused_days", "enabled"]
SHOWN = ["prefix", "url", "auth", *SETTINGS, "source", "mirrored", "last_sync"]


class UpstreamForm(forms.ModelForm):
    url = forms.URLField(
        assume_scheme="https", max_length=200, help_text=Upstream._meta.get_field("url").help_text
    )
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="A password or a token; left blank, the stored one (if any) stays",
    )
    remove_password = forms.BooleanField(required=False, label="Remove the stored password")

    class Meta:
        model = Upstream
        fields = [*EDITABLE[:-1], *SETTINGS]

    def clean_prefix(self) -> str:
        prefix = self.cleaned_data["prefix"]
        if self.instance.pk is not None and prefix != self.instance.prefix:
            raise forms.ValidationError("The prefix of an upstream cannot change: add another upstream.")
        return prefix

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("Give an http:// or https:// URL.")
        return url.rstrip("/")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("remove_password"):
            cleaned["password"] = ""
        elif not cleaned.get("password") and self.instance.pk is not None:
            cleaned["password"] = self.instance.password
        return cleaned


def repositories_url(upstream: Upstream) -> str:
    """The repository list, searched for the upstream's prefix."""
    return (
        f"{reverse('admin:registry_repository_changelist')}?{urlencode({SEARCH_VAR: upstream.prefix + '/'})}"
    )


class UpstreamAdmin(admin.ModelAdmin):
    form = UpstreamForm
    list_display = ["prefix", "url", "auth", "trust", "enabled", "source", "mirrored", "last_sync"]
    readonly_fields = ["auth", "source", "mirrored", "last_sync"]
    ordering = ["prefix"]
    search_fields = ["prefix", "url"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Upstream]:
        return Upstream.objects.with_mirrored()

    def get_fields(self, request: HttpRequest, obj: Upstream | None = None) -> list[str]:
        if obj is not None and not self.has_change_permission(request, obj):
            return SHOWN  # a page to read: every field shown as text, so never the password's
        if obj is None:  # nothing stored yet: nothing to remove, nothing counted
            return [field for field in (*EDITABLE, *SETTINGS) if field != "remove_password"]
        return [*EDITABLE, *SETTINGS, *self.readonly_fields]

    def has_change_permission(self, request: HttpRequest, obj: Upstream | None = None) -> bool:
        return not (obj is not None and obj.from_environment) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Upstream | None = None) -> bool:
        return not (obj is not None and obj.from_environment) and super().has_delete_permission(request, obj)

    @admin.display(description="sign-in")
    def auth(self, upstream: Upstream) -> str:
        return upstream.auth_kind

    @admin.display(description="tag trusted for", ordering="tag_trust_seconds")
    def trust(self, upstream: Upstream) -> str:
        return format_duration(upstream.tag_trust_seconds)

    @admin.display(description="configured in")
    def source(self, upstream: Upstream) -> str:
        return "CROW_UPSTREAMS (read-only here)" if upstream.from_environment else "the admin or the API"

    @admin.display(description="mirrored repositories", ordering="mirrored_count")
    def mirrored(self, upstream: Upstream) -> str:
        return format_html('<a href="{}">{}</a>', repositories_url(upstream), upstream.mirrored_count)  # type: ignore[attr-defined]

    @admin.display(description="last sync", ordering="last_sync")
    def last_sync(self, upstream: Upstream) -> Any:
        return upstream.last_sync or "never"  # type: ignore[attr-defined]


def mirrors_of(repository_ids: list[int]) -> dict[int, MirroredRepository]:
    """The mirrored ones among ``repository_ids``, with their upstreams: one query for a page."""
    return MirroredRepository.objects.select_related("upstream").in_bulk(repository_ids)
