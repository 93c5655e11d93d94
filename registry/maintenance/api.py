"""``/api/read-only/`` in the management API: ``GET`` the mode (staff), ``PUT {"on": true}`` switch it
(superusers), as ``manage.py read_only`` and the admin's page do."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.maintenance import readonly


class ReadOnlySerializer(serializers.Serializer):
    on = serializers.BooleanField(help_text="whether pushes, uploads and deletes are refused")
    forced = serializers.BooleanField(
        read_only=True, help_text="CROW_READ_ONLY=1 in the server's environment"
    )
    switched = serializers.BooleanField(read_only=True, help_text="the switch every replica shares")
    changed_by = serializers.CharField(read_only=True)
    changed = serializers.DateTimeField(read_only=True, allow_null=True)
    description = serializers.CharField(read_only=True, source="describe")


class SuperuserWrites(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.method in ("GET", "HEAD", "OPTIONS") or bool(request.user.is_superuser)


class ReadOnlyView(APIView):
    """The read-only mode; a superuser switches it (every replica obeys within a second or two)."""

    permission_classes = [IsAdminUser, SuperuserWrites]

    @extend_schema(responses=ReadOnlySerializer)
    def get(self, request: Request) -> Response:
        return Response(self._render(readonly.state()))

    @extend_schema(request=ReadOnlySerializer, responses=ReadOnlySerializer)
    def put(self, request: Request) -> Response:
        given = ReadOnlySerializer(data=request.data)
        given.is_valid(raise_exception=True)
        return Response(self._render(readonly.switch(given.validated_data["on"])))

    def _render(self, state: readonly.State) -> dict:
        return dict(ReadOnlySerializer(state).data)


urlpatterns = [path("read-only/", ReadOnlyView.as_view(), name="api-read-only")]
