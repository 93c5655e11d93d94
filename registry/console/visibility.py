"""Public or private, as the token service decides a pull by anyone (``registry.auth.permissions``)."""

from django.conf import settings

from registry import patterns
from registry.auth.models import PublicPattern


class Visibility:
    """The public patterns, read once (one query) for a whole page of repositories."""

    def __init__(self) -> None:
        self.open = bool(settings.CROW_AUTH_DISABLED)
        self.public_patterns = (
            [] if self.open else list(PublicPattern.objects.values_list("pattern", flat=True))
        )

    def of(self, name: str) -> str:
        if self.open:
            return "public (open registry)"
        if any(patterns.matches(pattern, name) for pattern in self.public_patterns):
            return "public"
        return "private"
