"""What ``/api/upstreams/`` reads and writes (``registry.mirror.api``): never a stored password."""

from rest_framework import serializers

from registry import patterns
from registry.auth.serializers import validated_pattern
from registry.mirror.models import Upstream


class PatternListField(serializers.ListField):
    """Repository patterns as a list; the model keeps them as text, one per line."""

    def __init__(self, **kwargs) -> None:
        super().__init__(
            child=serializers.CharField(max_length=257, validators=[validated_pattern]),
            min_length=1,
            **kwargs,
        )

    def to_representation(self, value: str) -> list[str]:
        return patterns.split(value)

    def to_internal_value(self, data: object) -> str:
        return "\n".join(super().to_internal_value(data))


class UpstreamSerializer(serializers.ModelSerializer):
    # Write-only: omitted or "" keeps the stored one on an update, null removes it.
    password = serializers.CharField(
        max_length=1024,
        write_only=True,
        required=False,
        allow_blank=True,
        allow_null=True,
        style={"input_type": "password"},
    )
    repositories = PatternListField(required=False)
    auth = serializers.CharField(source="auth_kind", read_only=True)
    mirrored_repositories = serializers.IntegerField(source="mirrored_count", read_only=True, default=0)
    last_sync = serializers.DateTimeField(read_only=True, default=None)

    class Meta:
        model = Upstream
        fields = [
            "id",
            "prefix",
            "url",
            "username",
            "password",
            "auth",
            "tag_trust_seconds",
            "repositories",
            "unused_days",
            "enabled",
            "from_environment",
            "mirrored_repositories",
            "last_sync",
            "created",
        ]
        read_only_fields = ["from_environment", "created"]

    def validate_prefix(self, value: str) -> str:
        if self.instance is not None and value != self.instance.prefix:
            # Its mirrored repositories are named after it: a new prefix is a new upstream.
            raise serializers.ValidationError("the prefix of an upstream cannot change: create another one")
        return value

    def validate_url(self, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("give an http:// or https:// URL")
        return value.rstrip("/")

    def validate(self, data: dict) -> dict:
        password = data.pop("password", "")
        if password is None:
            data["password"] = ""
        elif password or self.instance is None:
            data["password"] = password
        return data
