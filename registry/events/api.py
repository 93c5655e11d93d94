"""``GET /api/audit/`` (the audit log) and ``/api/webhooks/`` (staff only), in the management API.

The audit log is newest first, filtered by ``repository``, ``action``,
``actor``, ``since`` and ``until`` (ISO 8601), a cursor page at a time
(``next`` in the answer; ``page_size`` up to 1000). Staff see every row; any
other user the rows of repositories in their own namespace, and a 403 for a
``repository`` outside it.
"""

from datetime import UTC, datetime

from django.db.models import QuerySet
from django.urls import include, path
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from registry.auth.api import manages
from registry.events.models import AuditEvent, Delivery, Webhook
from registry.events.serializers import AuditEventSerializer, DeliverySerializer, WebhookSerializer


class NewestFirst(CursorPagination):
    ordering = ("-time", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class AuditList(ListAPIView):
    """The audit log: who pushed, deleted, logged in or changed an access rule, newest first."""

    serializer_class = AuditEventSerializer
    pagination_class = NewestFirst

    def get_queryset(self) -> QuerySet[AuditEvent]:
        params, user = self.request.query_params, self.request.user
        found = AuditEvent.objects.all()
        repository = params.get("repository")
        if repository:
            if not manages(user, repository):
                raise PermissionDenied("you may read the audit log of your own repositories only")
            found = found.filter(repository=repository)
        elif not (user.is_staff or user.is_superuser):
            found = found.filter(repository__startswith=user.get_username() + "/")
        for name in ("action", "actor"):
            if params.get(name):
                found = found.filter(**{name: params[name]})
        if params.get("since"):
            found = found.filter(time__gte=_time(params["since"], "since"))
        if params.get("until"):
            found = found.filter(time__lt=_time(params["until"], "until"))
        return found


def _time(value: str, name: str) -> datetime:
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValidationError({name: "give an ISO 8601 time, e.g. 2026-11-29T12:00:00Z"})
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Webhooks: events (push, delete, repository) on repositories matching patterns, POSTed signed."""

    queryset = Webhook.objects.order_by("id")
    serializer_class = WebhookSerializer
    permission_classes = [IsAdminUser]

    @action(detail=True, serializer_class=DeliverySerializer)
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        """The webhook's deliveries, newest first: status, attempts, last error and status."""
        found = Delivery.objects.filter(webhook=self.get_object()).order_by("-created", "-id")[:100]
        return Response(DeliverySerializer(found, many=True).data)


router = DefaultRouter()
router.register("webhooks", WebhookViewSet, basename="webhook")

urlpatterns = [
    path("audit/", AuditList.as_view(), name="api-audit"),
    path("", include(router.urls)),
]
