"""``/api/upstreams/``: the pull-through cache's upstreams, for superusers; ``registry.auth.api`` includes it.

Passwords are write-only: no answer ever holds one. Upstreams from
``CROW_UPSTREAMS`` are listed but cannot be changed or deleted here (403): the
next start would undo it; change the environment instead.
"""

from django.db.models import QuerySet
from django.urls import include, path
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.routers import DefaultRouter

from registry.mirror.models import Upstream
from registry.mirror.serializers import UpstreamSerializer


class IsSuperuser(BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        return bool(request.user and request.user.is_superuser)


class UpstreamViewSet(viewsets.ModelViewSet):
    """Upstream registries mirrored under a prefix: ``PREFIX/NAME`` here is ``NAME`` at the URL."""

    serializer_class = UpstreamSerializer
    permission_classes = [IsSuperuser]
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[Upstream]:
        return Upstream.objects.with_mirrored().order_by("prefix")

    def perform_update(self, serializer: UpstreamSerializer) -> None:
        _refuse_environment(serializer.instance)
        serializer.save()

    def perform_destroy(self, instance: Upstream) -> None:
        _refuse_environment(instance)
        instance.delete()


def _refuse_environment(upstream: Upstream) -> None:
    if upstream.from_environment:
        raise PermissionDenied(f"{upstream.prefix} comes from CROW_UPSTREAMS: change it there")


router = DefaultRouter()
router.register("upstreams", UpstreamViewSet, basename="upstream")

urlpatterns = [path("", include(router.urls))]
