"""Upload sessions in progress: where, how old, how many bytes so far; cancelling one frees its storage.

Cancelling is what the API's DELETE on an upload does (``registry.uploads.cancel``):
the store's parts or file go at once, and a request still writing is fenced off.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.timesince import timesince

from registry import uploads
from registry.console import formatting
from registry.maintenance import readonly
from registry.models import Upload


class UploadAdmin(admin.ModelAdmin):
    list_display = ["session", "repository", "age", "received", "updated"]
    list_select_related = ["repository"]
    list_per_page = 100
    show_full_result_count = False
    search_fields = ["repository__name"]
    ordering = ["created"]
    fields = ["session", "repository", "age", "received", "created", "updated", "claimed_until"]
    readonly_fields = fields
    actions = ["cancel_uploads"]

    def get_actions(self, request: HttpRequest) -> dict:
        found = super().get_actions(request)
        found.pop("delete_selected", None)  # deleting the row alone would leave the bytes behind
        return found

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the cancel action frees storage; a bare row delete would not

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("registry.delete_upload") and not readonly.is_on()

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": "Uploads in progress", **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        return super().change_view(
            request, object_id, form_url, {"title": "Upload session", **(extra_context or {})}
        )

    @admin.action(description="Cancel the selected uploads (frees their storage)", permissions=["cancel"])
    def cancel_uploads(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        cancelled = 0
        for upload in queryset.select_related("repository"):
            uploads.cancel(upload)
            cancelled += 1
        self.message_user(
            request, f"Cancelled {cancelled} upload(s); their stored bytes are freed.", messages.SUCCESS
        )

    @admin.display(description="session")
    def session(self, upload: Upload) -> str:
        return upload.id.hex

    @admin.display(description="age", ordering="created")
    def age(self, upload: Upload) -> str:
        return timesince(upload.created, timezone.now())

    @admin.display(description="bytes so far", ordering="offset")
    def received(self, upload: Upload) -> str:
        return formatting.size_html(upload.offset)
