"""What the management API reads and writes (``registry.auth.api``)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from registry import patterns
from registry.auth.models import ACTIONS, Grant, PublicPattern, Robot
from registry.models import Repository, Tag


def validated_pattern(value: str) -> str:
    """A repository pattern (``registry.patterns``) as DRF validates a field: the API's one check."""
    try:
        patterns.validate(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None
    return value


class NamedField(serializers.SlugRelatedField):
    """A user or group by name; a name with a NUL byte (which PostgreSQL refuses) names nobody."""

    def to_internal_value(self, data: object) -> object:
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return super().to_internal_value(data)


class ActionsField(serializers.MultipleChoiceField):
    """pull, push and delete as a list; stored as the model's three flags."""

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=ACTIONS, **kwargs)

    def to_representation(self, value: frozenset[str]) -> list[str]:
        return [action for action in ACTIONS if action in value]


class RepositorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Repository
        fields = ["name", "created"]


class TagSerializer(serializers.ModelSerializer):
    digest = serializers.CharField(source="manifest.digest", read_only=True)
    media_type = serializers.CharField(source="manifest.media_type", read_only=True)

    class Meta:
        model = Tag
        fields = ["name", "digest", "media_type", "updated"]


class PublicPatternSerializer(serializers.ModelSerializer):
    pattern = serializers.CharField(max_length=257, validators=[validated_pattern])

    class Meta:
        model = PublicPattern
        fields = ["id", "pattern", "created"]
        read_only_fields = ["created"]


class GrantSerializer(serializers.ModelSerializer):
    pattern = serializers.CharField(max_length=257, validators=[validated_pattern])
    user = NamedField(
        slug_field="username", queryset=get_user_model().objects.all(), required=False, allow_null=True
    )
    group = NamedField(slug_field="name", queryset=Group.objects.all(), required=False, allow_null=True)
    actions = ActionsField()

    class Meta:
        model = Grant
        fields = ["id", "pattern", "user", "group", "actions", "created"]
        read_only_fields = ["created"]

    def validate(self, data: dict) -> dict:
        if bool(data.get("user")) == bool(data.get("group")):
            raise serializers.ValidationError("give either a user or a group")
        if not data["actions"]:
            raise serializers.ValidationError({"actions": "give at least one action"})
        return data

    def create(self, data: dict) -> Grant:
        actions = data.pop("actions")
        return Grant.objects.create(**data, **Grant.flags(actions))


class RobotSerializer(serializers.ModelSerializer):
    username = serializers.CharField(read_only=True)
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    patterns = serializers.ListField(
        child=serializers.CharField(validators=[validated_pattern]), source="pattern_list"
    )
    actions = ActionsField()

    class Meta:
        model = Robot
        fields = [
            "name",
            "username",
            "owner",
            "description",
            "patterns",
            "actions",
            "expires",
            "revoked",
            "created",
            "last_used",
        ]
        read_only_fields = ["revoked", "created", "last_used"]

    def validate_patterns(self, value: list[str]) -> list[str]:
        if not value:
            raise serializers.ValidationError("give at least one repository pattern")
        return value

    def validate_actions(self, value: set[str]) -> set[str]:
        if not value:
            raise serializers.ValidationError("give at least one action")
        return value


class NewRobotSerializer(RobotSerializer):
    """A robot just created: the only answer that ever holds its secret."""

    secret = serializers.CharField(read_only=True)

    class Meta(RobotSerializer.Meta):
        fields = [*RobotSerializer.Meta.fields, "secret"]
