"""System checks: a broken configuration stops ``manage.py`` at start-up, with a hint.

``make run`` runs ``migrate`` and ``collectstatic``, which run these checks, so
the embedded default (SQLite, ``var/blobs``, no secret key) must produce
warnings only: it is meant to start as it is.
"""

import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import ImproperlyConfigured

from registry.mirror import environment

# crow/settings.py's fallback secret key starts with this.
INSECURE_KEY_PREFIX = "insecure-"


def _embedded_database() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


@register(Tags.security)
def check_secret_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.DEBUG or not settings.SECRET_KEY.startswith(INSECURE_KEY_PREFIX):
        return []
    hint = "Set CROW_SECRET_KEY (or CROW_SECRET_KEY_FILE) to a long random value."
    message = "SECRET_KEY is the public development key while DEBUG is off."
    if _embedded_database():
        # The embedded default must start as it is; a real deployment must not.
        return [CheckWarning(message, hint=hint, id="crow.W001")]
    return [Error(message, hint=hint, id="crow.E001")]


@register()
def check_blob_root(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.CROW_STORAGE != "filesystem":
        return []
    root = Path(settings.CROW_BLOB_ROOT)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        return [
            Error(
                f"CROW_BLOB_ROOT {root} cannot be created or written: {exc.strerror}.",
                hint="Point CROW_BLOB_ROOT at a writable directory, or fix its owner and permissions.",
                id="crow.E002",
            )
        ]
    return []


@register()
def check_page_sizes(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.CROW_MAX_PAGE_SIZE >= settings.CROW_PAGE_SIZE:
        return []
    return [
        Error(
            f"CROW_MAX_PAGE_SIZE ({settings.CROW_MAX_PAGE_SIZE}) is smaller than "
            f"CROW_PAGE_SIZE ({settings.CROW_PAGE_SIZE}).",
            hint="The default page must fit in the largest page: raise CROW_MAX_PAGE_SIZE.",
            id="crow.E003",
        )
    ]


@register()
def check_production_database(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.DEBUG or not _embedded_database():
        return []
    return [
        CheckWarning(
            "The registry runs on the embedded SQLite database while DEBUG is off.",
            hint="Set DATABASE_URL to a PostgreSQL database for production.",
            id="crow.W002",
        )
    ]


@register(Tags.security)
def check_client_address_header(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Before, ``CROW_CLIENT_ADDRESS_HEADER`` was believed from anyone; now from trusted proxies only."""
    if not settings.CROW_CLIENT_ADDRESS_HEADER or settings.CROW_TRUSTED_PROXIES:
        return []
    return [
        CheckWarning(
            f"CROW_CLIENT_ADDRESS_HEADER ({settings.CROW_CLIENT_ADDRESS_HEADER}) is ignored: it is believed"
            " only from CROW_TRUSTED_PROXIES, which names no proxy.",
            hint="Set CROW_TRUSTED_PROXIES to your reverse proxy's addresses or CIDRs; else every client"
            " behind it has the proxy's address (and shares its login throttling).",
            id="crow.W003",
        )
    ]


@register()
def check_s3_bucket(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.CROW_STORAGE != "s3" or settings.CROW_S3_BUCKET:
        return []
    return [
        Error(
            "CROW_STORAGE is s3 but no bucket is named.",
            hint="Set CROW_S3_BUCKET (and CROW_S3_ENDPOINT_URL for R2 or another S3-compatible store).",
            id="crow.E004",
        )
    ]


@register()
def check_upstreams(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What ``crow.env`` cannot check of CROW_UPSTREAMS: prefixes and patterns in the registry's grammar."""
    try:
        environment.validate(settings.CROW_UPSTREAMS)
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="A prefix is lowercase, like a repository name (docker.io, mirrors/quay);"
                " CROW_UPSTREAM_<PREFIX>_REPOSITORIES lists names or patterns (library/*).",
                id="crow.E005",
            )
        ]
    return []
