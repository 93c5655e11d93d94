"""Grants, public repositories and robot accounts in the Django admin.

A robot's secret is made when the robot is saved for the first time and
shown once, in the confirmation message; only its hash is kept.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from registry.auth import robots
from registry.auth.models import Grant, PublicPattern, Robot


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = ["pattern", "user", "group", "may_pull", "may_push", "may_delete", "created"]
    list_filter = ["may_pull", "may_push", "may_delete"]
    list_select_related = ["user", "group"]
    search_fields = ["pattern", "user__username", "group__name"]
    autocomplete_fields = ["user", "group"]
    fields = ["pattern", "user", "group", "may_pull", "may_push", "may_delete"]


@admin.register(PublicPattern)
class PublicPatternAdmin(admin.ModelAdmin):
    list_display = ["pattern", "created"]
    search_fields = ["pattern"]
    fields = ["pattern"]


@admin.register(Robot)
class RobotAdmin(admin.ModelAdmin):
    list_display = ["username", "owner", "actions_display", "expires", "revoked", "last_used"]
    list_filter = ["revoked"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username", "patterns"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["created", "last_used"]
    fields = [
        "name",
        "owner",
        "description",
        "patterns",
        "may_pull",
        "may_push",
        "may_delete",
        "expires",
        "revoked",
    ]
    actions = ["revoke"]

    @admin.display(description="actions")
    def actions_display(self, robot: Robot) -> str:
        return robot.actions_display

    def get_readonly_fields(self, request: HttpRequest, obj: Robot | None = None) -> list[str]:
        # A robot keeps its name: it is its login, and scripts hold it.
        return [*self.readonly_fields, "name"] if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Robot, form: ModelForm, change: bool) -> None:
        secret = None
        if not change:
            secret = robots.new_secret()
            obj.secret_hash = robots.hash_secret(secret)
        super().save_model(request, obj, form, change)
        if secret is not None:
            messages.warning(
                request,
                f"Log in as {obj.username} with the secret {secret} — copy it now, it is not shown again.",
            )

    @admin.action(description="Revoke the selected robots")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Robot]) -> None:
        revoked = list(queryset.filter(revoked=False))
        for robot in revoked:
            robots.revoke(robot)  # each one recorded in the audit log
        self.message_user(request, f"Revoked {len(revoked)} robot(s).")
