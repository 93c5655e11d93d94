"""boto3's failures as the store's errors: one translation for the blob store and the backups' bucket."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from registry.storage.base import StorageError

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


@contextmanager
def boto_errors(failure: Callable[[str, bool], Exception], *, missing_ok: bool = False) -> Iterator[None]:
    """Raise boto3's failures as ``failure(message, answered)`` makes them (``answered`` is False when
    the endpoint could not be reached); with ``missing_ok``, a missing object is no error."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if missing_ok and code in _MISSING:
            return
        raise failure(f"{code} {error.get('Message', '')}".strip(), True) from exc
    except BotoCoreError as exc:
        raise failure(str(exc), False) from exc


def storage_errors(action: str, *, missing_ok: bool = False) -> AbstractContextManager[None]:
    """Turn boto3's failures into ``StorageError``; with ``missing_ok``, a missing object is no error."""
    return boto_errors(
        lambda message, _: StorageError(f"storage could not {action}: {message}"), missing_ok=missing_ok
    )


def body_chunks(body: Any, chunk_size: int, action: str) -> Iterator[bytes]:
    try:
        with storage_errors(action):
            yield from body.iter_chunks(chunk_size)
    finally:
        body.close()
