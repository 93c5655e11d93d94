"""Helpers for the tests of ``registry.auth``: a secured registry, users, grants, credentials, tokens.

The rest of the suite runs with the registry open; tests marked ``auth`` call
``secure`` (from an autouse fixture) to turn authentication on, with a signing
key of their own and a fast password hasher.
"""

import base64
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from pytest_django.fixtures import Settings

from registry.auth.models import Grant, PublicPattern

PASSWORD = "correct horse battery staple"


def secure(settings: Settings, tmp_path: Path) -> None:
    settings.CROW_AUTH_DISABLED = False
    settings.CROW_ANONYMOUS_PULL = True
    settings.CROW_TOKEN_KEY = ""
    settings.CROW_TOKEN_KEY_PATH = tmp_path / "token-key.pem"
    settings.CROW_TOKEN_SERVICE = "crow-test"
    settings.CROW_TOKEN_REALM = ""
    settings.CROW_CLIENT_ADDRESS_HEADER = ""
    settings.CROW_TRUSTED_PROXIES = ()
    # A real hasher costs most of a second per login: these tests log in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # the failed-login counters


def user(username: str, **extra: Any):
    return get_user_model().objects.create_user(username, password=PASSWORD, **extra)


def grant(pattern: str, actions: str, to: Any = None, group: Any = None) -> Grant:
    """``grant("team/*", "pull,push", to=alice)``."""
    return Grant.objects.create(pattern=pattern, user=to, group=group, **Grant.flags(set(actions.split(","))))


def public(pattern: str) -> PublicPattern:
    return PublicPattern.objects.create(pattern=pattern)


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    value = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(client: Client, *scopes: str, headers: dict[str, str] | None = None) -> str:
    """A token from ``/token`` for ``scopes``, with ``headers`` as credentials (anonymous without)."""
    response = client.get("/token", {"service": "crow-test", "scope": list(scopes)}, headers=headers or {})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def challenge(response: Any) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer`` challenge."""
    scheme, _, rest = response["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer", response["WWW-Authenticate"]
    params = {}
    for part in rest.split('",'):
        key, _, value = part.partition("=")
        params[key.strip()] = value.strip().strip('"')
    return params
