"""Blob storage: the interface in ``base``, one module per backend, chosen by settings."""

from functools import cache

from django.conf import settings
from django.core.signals import setting_changed

from registry.storage.base import (
    BlobStore,
    Download,
    Fenced,
    LocalFile,
    Redirect,
    StorageError,
    StorageFull,
    Stream,
    WriteClaim,
)

__all__ = [
    "BlobStore",
    "Download",
    "Fenced",
    "LocalFile",
    "Redirect",
    "StorageError",
    "StorageFull",
    "Stream",
    "WriteClaim",
    "blob_store",
]


@cache
def blob_store() -> BlobStore:
    """The configured store, built once per process."""
    if settings.CROW_STORAGE == "filesystem":
        from registry.storage.filesystem import FilesystemStore

        return FilesystemStore(settings.CROW_BLOB_ROOT)
    if settings.CROW_STORAGE == "s3":
        from registry.storage.s3 import S3Store

        return S3Store(
            bucket=settings.CROW_S3_BUCKET,
            endpoint_url=settings.CROW_S3_ENDPOINT_URL,
            region=settings.CROW_S3_REGION,
            access_key_id=settings.CROW_S3_ACCESS_KEY_ID,
            secret_access_key=settings.CROW_S3_SECRET_ACCESS_KEY,
            prefix=settings.CROW_S3_PREFIX,
            part_size=settings.CROW_S3_PART_SIZE,
            redirect=settings.CROW_S3_REDIRECT,
            presign_expiry=settings.CROW_S3_PRESIGN_EXPIRY,
            public_url=settings.CROW_S3_PUBLIC_URL,
        )
    raise NotImplementedError(f"CROW_STORAGE={settings.CROW_STORAGE} is not available yet")


def _forget_store(setting: str, **kwargs: object) -> None:
    if setting.startswith("CROW_"):
        blob_store.cache_clear()


setting_changed.connect(_forget_store)
