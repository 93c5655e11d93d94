"""System checks of the access settings: an open registry is loud, a broken token key stops start-up."""

import importlib.util
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import ImproperlyConfigured


@register()
def check_auth_disabled(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not settings.CROW_AUTH_DISABLED:
        return []
    return [
        CheckWarning(
            "AUTHENTICATION IS DISABLED (CROW_AUTH_DISABLED): anyone who reaches this server may pull, "
            "push and delete every repository.",
            hint="For local development only. Unset CROW_AUTH_DISABLED anywhere others can connect.",
            id="crow_auth.W001",
        )
    ]


@register()
def check_token_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not settings.CROW_TOKEN_KEY:
        return []
    from registry.auth import keys  # cryptography: only to parse a key that is set

    try:
        keys.parse(settings.CROW_TOKEN_KEY)
    except ImproperlyConfigured as exc:
        return [
            Error(
                f"CROW_TOKEN_KEY cannot sign tokens: {exc}.",
                hint="Generate one: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256",
                id="crow_auth.E001",
            )
        ]
    return []


@register()
def check_redis(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """CROW_REDIS_URL needs the redis package: say so at start-up, not at the first failed login."""
    if not settings.CROW_REDIS_URL or importlib.util.find_spec("redis") is not None:
        return []
    return [
        Error(
            "CROW_REDIS_URL is set but the redis package is not installed.",
            hint="pip install -r requirements.txt (it pins redis), or unset CROW_REDIS_URL.",
            id="crow_auth.E002",
        )
    ]
