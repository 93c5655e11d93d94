"""The management API under ``/api/``, for automation: robots, visibility, grants, repositories, tags.

Authenticated by a session (the admin's) or an API token (``Authorization:
Token <key>``, from the admin's "Tokens" page or ``manage.py drf_create_token``).
Staff manage everything; any other user manages robots of their own and the
grants and public patterns inside their own namespace (``alice/...``), and
sees the repositories they may pull. The OpenAPI schema is ``/api/schema/``.
"""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from registry import references
from registry.auth import identity, permissions, robots
from registry.auth.identity import Identity
from registry.auth.models import PULL, ROBOT_NAME, Grant, PublicPattern, Robot
from registry.auth.serializers import (
    GrantSerializer,
    NewRobotSerializer,
    PublicPatternSerializer,
    RepositorySerializer,
    RobotSerializer,
    TagSerializer,
)
from registry.models import Repository, Tag


def _caller(request: Request) -> Identity:
    return identity.of_user(request.user)


def manages(user, pattern: str) -> bool:
    """Staff manage every pattern; a user the patterns inside their own namespace."""
    if user.is_staff or user.is_superuser:
        return True
    username = user.get_username()
    return references.is_name(username) and "/" not in username and pattern.startswith(username + "/")


class RepositoryList(ListAPIView):
    """The repositories the caller may pull."""

    serializer_class = RepositorySerializer

    def get_queryset(self) -> QuerySet[Repository]:
        return permissions.pullable(_caller(self.request)).order_by("name")


class TagList(ListAPIView):
    """The tags of a repository the caller may pull (404 for one they may not, as for a missing one)."""

    serializer_class = TagSerializer

    def get_queryset(self) -> QuerySet[Tag]:
        name = self.kwargs["name"]
        # A name outside the grammar (a NUL byte included) names no repository: never a query.
        if not references.is_name(name) or PULL not in permissions.actions(_caller(self.request), name):
            get_object_or_404(Repository.objects.none())
        repository = get_object_or_404(Repository, name=name)
        return Tag.objects.filter(repository=repository).select_related("manifest").order_by("name")


class _ScopedViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Rules on patterns: listed, created and deleted only where the caller manages the pattern."""

    def get_queryset(self) -> QuerySet:
        found = self.queryset.order_by("pattern", "id")
        user = self.request.user
        if user.is_staff or user.is_superuser:
            return found
        return found.filter(pattern__startswith=user.get_username() + "/")

    def perform_create(self, serializer) -> None:
        if not manages(self.request.user, serializer.validated_data["pattern"]):
            raise PermissionDenied("you may manage patterns inside your own namespace only")
        serializer.save()


class GrantViewSet(_ScopedViewSet):
    """Pull, push and delete on a pattern (``team/app``, ``team/*``, ``*``) for a user or a group."""

    queryset = Grant.objects.select_related("user", "group")
    serializer_class = GrantSerializer


class PublicPatternViewSet(_ScopedViewSet):
    """Public repositories: anyone may pull them (see CROW_ANONYMOUS_PULL), nobody may push anonymously."""

    queryset = PublicPattern.objects.all()
    serializer_class = PublicPatternSerializer


class RobotViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Robot accounts; creating one answers with its secret, once. DELETE revokes (the row stays)."""

    queryset = Robot.objects.select_related("owner").order_by("name")
    serializer_class = RobotSerializer
    lookup_field = "name"
    # Only robot names route: other text (a NUL byte) is a 404 without a query.
    lookup_value_regex = ROBOT_NAME.removeprefix("^").removesuffix("$")

    def get_queryset(self) -> QuerySet[Robot]:
        found = self.queryset.all()
        user = self.request.user
        return found if user.is_staff or user.is_superuser else found.filter(owner=user)

    @extend_schema(responses={201: NewRobotSerializer})
    def create(self, request: Request) -> Response:
        serializer = RobotSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        robot, secret = robots.create(
            owner=request.user,
            name=data["name"],
            patterns="\n".join(data["pattern_list"]),
            actions=frozenset(data["actions"]),
            expires=data.get("expires"),
            description=data.get("description", ""),
        )
        robot.secret = secret  # type: ignore[attr-defined]
        return Response(NewRobotSerializer(robot).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Robot) -> None:
        robots.revoke(instance)


router = DefaultRouter()
router.register("grants", GrantViewSet, basename="grant")
router.register("public", PublicPatternViewSet, basename="public")
router.register("robots", RobotViewSet, basename="robot")

urlpatterns = [
    path("repositories/", RepositoryList.as_view(), name="api-repositories"),
    path("repositories/<path:name>/tags/", TagList.as_view(), name="api-tags"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("registry.events.api")),  # audit log and webhooks
    path("", include("registry.mirror.api")),  # the pull-through cache's upstreams
    path("", include("registry.maintenance.api")),  # the read-only switch
    path("", include(router.urls)),
]
