"""The read-only switch's page: the mode, by what it is on, and (for superusers) the switch.

``/admin/registry/readonlyswitch/`` is this page instead of a list of the one
row: staff see the state, superusers turn it on or off (``POST``, recorded in
the audit log as theirs by ``registry.events.middleware``).
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from registry.maintenance import readonly

ACTIONS = {"on": True, "off": False}


class ReadOnlySwitchAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_active and request.user.is_staff

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._switch(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Read-only mode",
            "opts": self.model._meta,
            "state": readonly.state(),
            "can_switch": self.has_change_permission(request),
            "refresh": readonly.REFRESH,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/registry/readonly_switch.html", context)

    def change_view(self, request: HttpRequest, object_id: str, *args, **kwargs) -> HttpResponse:
        return HttpResponseRedirect("../")

    def _switch(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        on = ACTIONS.get(request.POST.get("action", ""))
        if on is None:
            messages.error(request, "Say on or off.")
        else:
            state = readonly.switch(on)
            note = ""
            if not on and state.forced:
                note = f" It stays read-only: {readonly.ENVIRONMENT} (a restart without it ends that)."
            messages.success(request, f"The registry is now {state.describe()}.{note}")
        return HttpResponseRedirect(request.path)
