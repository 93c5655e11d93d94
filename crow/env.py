"""Typed readers for settings that come from the environment.

Each reader fails loudly: a value that cannot be parsed raises
``ImproperlyConfigured`` naming the variable, so a typo stops the server at
start-up instead of surfacing as odd behaviour later. A variable set to nothing
(``DATABASE_URL=`` in a .env file or a compose file) counts as unset: its
default applies. Secrets may also be
given as ``NAME_FILE`` (a path), the convention of container secrets.
"""

import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DURATION = re.compile(r"^(\d+)(s|m|h|d)?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def _raw(name: str) -> str | None:
    """The variable's value, or None if it is unset or blank."""
    raw = os.environ.get(name)
    return None if raw is None or raw.strip() == "" else raw


def string(name: str, default: str = "") -> str:
    raw = _raw(name)
    return default if raw is None else raw


def boolean(name: str, default: bool = False) -> bool:
    raw = _raw(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), not {raw!r}")


def integer(name: str, default: int, minimum: int | None = None) -> int:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def duration(name: str, default: str) -> int:
    """A duration such as ``90``, ``90s``, ``15m``, ``6h`` or ``7d``, in seconds."""
    return parse_duration(string(name, default), name)


def parse_duration(raw: str, name: str = "duration") -> int:
    match = _DURATION.match(raw.strip().lower())
    if not match:
        raise ImproperlyConfigured(f"{name} must be a duration like 90s, 15m, 6h or 7d, not {raw!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: int) -> str:
    """``1h``, ``15m``, ``7d``, ``90s``: a number of seconds as ``parse_duration`` takes it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def secret(name: str, default: str = "") -> str:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE``."""
    path = _raw(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return string(name, default)


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = string(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def path_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in string(name, default).split(",") if part.strip()]


def networks(name: str, default: str = "") -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated addresses or CIDRs (``10.0.0.0/8,127.0.0.1,fd00::/8``)."""
    parsed = []
    for value in path_list(name, default):
        try:
            parsed.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name} must list addresses or CIDRs, not {value!r}") from None
    return tuple(parsed)


def named_urls(name: str) -> dict[str, str]:
    """``docker.io=https://registry-1.docker.io,ghcr.io=https://ghcr.io``: names to http(s) base URLs."""
    found: dict[str, str] = {}
    for item in path_list(name, ""):
        key, equals, url = (part.strip() for part in item.partition("="))
        parsed = urlsplit(url)
        if not equals or not key or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ImproperlyConfigured(
                f"{name} must list NAME=URL pairs (docker.io=https://...), not {item!r}"
            )
        if key in found:
            raise ImproperlyConfigured(f"{name} names {key!r} twice")
        found[key] = url.rstrip("/")
    return found


def variable_stem(stem: str, name: str) -> str:
    """``CROW_UPSTREAM_DOCKER_IO``: ``name`` in capitals, characters other than A-Z and 0-9 as ``_``."""
    return f"{stem}_{re.sub(r'[^A-Z0-9]', '_', name.upper())}"


def upstreams(name: str, tag_trust: str, unused_days: int) -> dict[str, dict]:
    """The upstreams ``name`` lists (``PREFIX=URL,...``), each with its own variables, in Upstream's fields.

    ``CROW_UPSTREAM_<PREFIX>_USERNAME`` and ``_PASSWORD`` (or ``_PASSWORD_FILE``),
    ``_TAG_TRUST`` (a duration), ``_REPOSITORIES`` (patterns) and ``_UNUSED_DAYS``
    (0: never collected) per upstream, ``<PREFIX>`` as ``variable_stem`` writes it;
    ``tag_trust`` and ``unused_days`` are the defaults.
    """
    found: dict[str, dict] = {}
    stems: dict[str, str] = {}
    for prefix, url in named_urls(name).items():
        stem = variable_stem("CROW_UPSTREAM", prefix)
        if stem in stems:
            raise ImproperlyConfigured(f"{name}: {stems[stem]!r} and {prefix!r} share the variables {stem}_*")
        stems[stem] = prefix
        username, password = string(f"{stem}_USERNAME"), secret(f"{stem}_PASSWORD")
        if bool(username) != bool(password):
            raise ImproperlyConfigured(f"{name}: give both {stem}_USERNAME and {stem}_PASSWORD, or neither")
        days = integer(f"{stem}_UNUSED_DAYS", unused_days, minimum=0)
        found[prefix] = {
            "url": url,
            "username": username,
            "password": password,
            "tag_trust_seconds": duration(f"{stem}_TAG_TRUST", tag_trust),
            "repositories": string(f"{stem}_REPOSITORIES", "*"),
            "unused_days": days or None,
        }
    return found
