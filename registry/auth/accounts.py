"""The first administrator, for ``manage.py ensure_admin`` (``make run`` calls it)."""

from dataclasses import dataclass

from django.contrib.auth import get_user_model


@dataclass(frozen=True)
class Report:
    username: str
    created: bool


def ensure_admin(username: str, password: str) -> Report:
    """Create superuser ``username`` unless a user of that name exists; an existing one is left as it is."""
    model = get_user_model()
    if model.objects.filter(**{model.USERNAME_FIELD: username}).exists():
        return Report(username, created=False)
    model.objects.create_superuser(**{model.USERNAME_FIELD: username}, email="", password=password)
    return Report(username, created=True)
