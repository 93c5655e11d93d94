"""Blob storage: the interface in ``base``, one module per backend, chosen by settings."""

from functools import cache

from django.conf import settings
from django.core.signals import setting_changed

from registry.storage.base import BlobStore, Download, LocalFile, Redirect, StorageError

__all__ = ["BlobStore", "Download", "LocalFile", "Redirect", "StorageError", "blob_store"]


@cache
def blob_store() -> BlobStore:
    """The configured store, built once per process."""
    if settings.CROW_STORAGE == "filesystem":
        from registry.storage.filesystem import FilesystemStore

        return FilesystemStore(settings.CROW_BLOB_ROOT)
    raise NotImplementedError(f"CROW_STORAGE={settings.CROW_STORAGE} is not available yet")


def _forget_store(setting: str, **kwargs: object) -> None:
    if setting.startswith("CROW_"):
        blob_store.cache_clear()


setting_changed.connect(_forget_store)
