"""The audit log (read-only, filtered), webhooks and their delivery history in the admin.

``registry.admin`` imports this module: one line, so the operator console's
own module stays about repositories and content.
"""

from django.contrib import admin
from django.http import HttpRequest

from registry.events.models import AuditEvent, Delivery, Webhook


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnly):
    list_display = ["time", "action", "actor", "address", "repository", "reference", "digest"]
    list_filter = ["action", "time"]
    search_fields = ["=actor", "repository", "=reference", "=digest", "=address"]
    date_hierarchy = "time"
    ordering = ["-time", "-id"]
    # The log grows without bound between retentions: no COUNT(*) of all of it on each page.
    show_full_result_count = False


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["created", "action", "repository", "status", "attempts", "last_status", "last_error"]
    readonly_fields = fields
    ordering = ["-created"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "events", "patterns", "enabled", "created"]
    list_filter = ["enabled"]
    fields = ["url", "secret", "events", "patterns", "enabled"]

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs):  # type: ignore[no-untyped-def]
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"  # Django 6's default, said now
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnly):
    list_display = ["created", "webhook", "action", "repository", "status", "attempts", "last_status"]
    list_filter = ["status", "webhook"]
    search_fields = ["=event_id", "repository"]
    readonly_fields = [
        "webhook",
        "event_id",
        "action",
        "repository",
        "status",
        "attempts",
        "last_attempt",
        "last_status",
        "last_error",
        "next_attempt",
        "created",
        "delivered",
        "body",
    ]
    ordering = ["-created", "-id"]
