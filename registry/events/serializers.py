"""What ``GET /api/audit/`` and ``/api/webhooks/`` read and write (``registry.events.api``)."""

from rest_framework import serializers

from registry.auth.serializers import validated_pattern
from registry.events.models import HOOK_EVENTS, AuditEvent, Delivery, Webhook


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "event_id",
            "time",
            "action",
            "actor",
            "address",
            "repository",
            "reference",
            "digest",
            "previous",
            "media_type",
            "size",
            "detail",
        ]


class WebhookSerializer(serializers.ModelSerializer):
    url = serializers.URLField(max_length=2000)
    # Never read back: it signs what the receiver trusts.
    secret = serializers.CharField(max_length=255, write_only=True, min_length=1)
    events = serializers.ListField(child=serializers.ChoiceField(choices=list(HOOK_EVENTS)), min_length=1)
    patterns = serializers.ListField(
        child=serializers.CharField(max_length=257, validators=[validated_pattern]), min_length=1
    )

    class Meta:
        model = Webhook
        fields = ["id", "url", "secret", "events", "patterns", "enabled", "created"]
        read_only_fields = ["created"]

    def validate_url(self, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("give an http:// or https:// URL")
        return value

    def validate_events(self, value: list[str]) -> list[str]:
        return sorted(set(value))


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
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
        ]
