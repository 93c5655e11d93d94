"""Repository patterns of grants, public repositories and robots: ``team/app``, ``team/*`` or ``*``.

``team/*`` covers every repository below ``team/`` (``team/app``,
``team/app/cache``) but not ``team`` itself; ``*`` covers all of them.
"""

from functools import reduce

from django.core.exceptions import ValidationError
from django.db.models import Q

from registry import references

EVERYTHING = "*"
_PREFIX_SUFFIX = "/*"


def is_pattern(value: str) -> bool:
    if value == EVERYTHING:
        return True
    return references.is_name(value.removesuffix(_PREFIX_SUFFIX))


def validate(value: str) -> None:
    """A model and serializer validator."""
    if not is_pattern(value):
        raise ValidationError(
            f"{value!r} is not a repository pattern: give a name (team/app), a prefix (team/*) or *"
        )


def split(text: str) -> list[str]:
    """Patterns written one per line (or separated by spaces or commas), as robots keep them."""
    return [part for part in text.replace(",", " ").split() if part]


def validate_list(text: str) -> None:
    patterns = split(text)
    if not patterns:
        raise ValidationError("give at least one repository pattern")
    for pattern in patterns:
        validate(pattern)


def matches(pattern: str, name: str) -> bool:
    if pattern == EVERYTHING:
        return True
    if pattern.endswith(_PREFIX_SUFFIX):
        return name.startswith(pattern[:-1])
    return name == pattern


def namespace(name: str) -> str:
    """The pattern of everything below ``name``."""
    return name + _PREFIX_SUFFIX


def q(patterns: list[str], field: str = "name") -> Q:
    """The repositories (by ``field``) that any of ``patterns`` covers; none for an empty list."""
    parts = []
    for pattern in patterns:
        if pattern == EVERYTHING:
            return ~Q(pk__in=[])
        if pattern.endswith(_PREFIX_SUFFIX):
            parts.append(Q(**{f"{field}__startswith": pattern[:-1]}))
        else:
            parts.append(Q(**{field: pattern}))
    return reduce(lambda a, b: a | b, parts, Q(pk__in=[]))
