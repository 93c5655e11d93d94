"""The protocol's error codes as one table of data, and the one exception type.

Code refers to an error by its name (``errors.BLOB_UNKNOWN``), never by an HTTP
status; ``registry.endpoint`` is the single place that turns a
``RegistryError`` into the spec's JSON envelope.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    message: str


def _table(*rows: tuple[str, int, str]) -> dict[str, ErrorCode]:
    return {code: ErrorCode(code, status, message) for code, status, message in rows}


# The OCI distribution spec's codes, plus RANGE_INVALID, PAGINATION_NUMBER_INVALID
# and UNKNOWN (as the reference registry has them) for what the spec's table does not name.
CODES = _table(
    ("BLOB_UNKNOWN", 404, "blob unknown to registry"),
    ("BLOB_UPLOAD_INVALID", 400, "blob upload invalid"),
    ("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"),
    ("DIGEST_INVALID", 400, "provided digest did not match uploaded content"),
    ("MANIFEST_BLOB_UNKNOWN", 400, "manifest references a manifest or blob unknown to registry"),
    ("MANIFEST_INVALID", 400, "manifest invalid"),
    ("MANIFEST_UNKNOWN", 404, "manifest unknown to registry"),
    ("NAME_INVALID", 400, "invalid repository name"),
    ("NAME_UNKNOWN", 404, "repository name not known to registry"),
    ("SIZE_INVALID", 400, "provided length did not match content length"),
    ("TAG_INVALID", 400, "invalid tag"),
    ("UNAUTHORIZED", 401, "authentication required"),
    ("DENIED", 403, "requested access to the resource is denied"),
    ("UNSUPPORTED", 405, "the operation is unsupported"),
    ("TOOMANYREQUESTS", 429, "too many requests"),
    ("RANGE_INVALID", 416, "invalid content range"),
    ("PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested"),
    ("UNKNOWN", 500, "unknown error"),
)

BLOB_UNKNOWN = CODES["BLOB_UNKNOWN"]
BLOB_UPLOAD_INVALID = CODES["BLOB_UPLOAD_INVALID"]
BLOB_UPLOAD_UNKNOWN = CODES["BLOB_UPLOAD_UNKNOWN"]
DIGEST_INVALID = CODES["DIGEST_INVALID"]
MANIFEST_BLOB_UNKNOWN = CODES["MANIFEST_BLOB_UNKNOWN"]
MANIFEST_INVALID = CODES["MANIFEST_INVALID"]
MANIFEST_UNKNOWN = CODES["MANIFEST_UNKNOWN"]
NAME_INVALID = CODES["NAME_INVALID"]
NAME_UNKNOWN = CODES["NAME_UNKNOWN"]
SIZE_INVALID = CODES["SIZE_INVALID"]
TAG_INVALID = CODES["TAG_INVALID"]
UNAUTHORIZED = CODES["UNAUTHORIZED"]
DENIED = CODES["DENIED"]
UNSUPPORTED = CODES["UNSUPPORTED"]
TOOMANYREQUESTS = CODES["TOOMANYREQUESTS"]
RANGE_INVALID = CODES["RANGE_INVALID"]
PAGINATION_NUMBER_INVALID = CODES["PAGINATION_NUMBER_INVALID"]
UNKNOWN = CODES["UNKNOWN"]


@dataclass(frozen=True)
class UploadPosition:
    """Where an upload stands, told with an error about it: ``registry.responses`` answers with its
    ``Location``, ``Range`` and ``Docker-Upload-UUID`` (and ``Retry-After`` when another request
    holds it), so the domain code that raises the error knows nothing of HTTP."""

    name: str
    upload_id: str
    offset: int
    retry_after: int | None = None


class RegistryError(Exception):
    """A protocol error: one of the codes above, a message and optional detail.

    ``status`` overrides the code's usual HTTP status where the spec asks for
    another one for the same code (416 for an out-of-order chunk, 413 for a
    manifest that is too large, 415 for a media type the registry refuses).
    ``upload``: the session an upload error is about, for the response's headers.
    """

    def __init__(
        self,
        error: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        upload: UploadPosition | None = None,
    ) -> None:
        self.error = error
        self.message = message or error.message
        self.detail = detail
        self.status = status or error.status
        self.headers = headers or {}
        self.upload = upload
        super().__init__(f"{error.code}: {self.message}")

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.error.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}


# A body that stopped arriving: the request timed out, not the client's input (the spec has no code for it).
REQUEST_TIMEOUT = 408


class Stalled(RegistryError):
    """No byte of the request's body arrived for the server's body timeout: 408.

    Raised by the body's stream (``registry.bodies``). An upload keeps the bytes
    that did arrive and says where it stands (``registry.uploads``); elsewhere,
    what arrived is refused whole, as a body that broke off.
    """

    def __init__(self, received: int) -> None:
        self.received = received
        message = f"no byte of the body arrived for too long, after {received} bytes"
        super().__init__(SIZE_INVALID, message, status=REQUEST_TIMEOUT)


# Seconds a client is asked to wait before retrying after a 503.
RETRY_AFTER = 5
DATABASE_UNAVAILABLE = "the registry's database is unavailable, retry later"


def blob_unknown(digest: str) -> RegistryError:
    """The blob is not in the repository (or the repository does not exist): 404 BLOB_UNKNOWN."""
    return RegistryError(BLOB_UNKNOWN, detail={"digest": digest})


def unavailable(message: str) -> RegistryError:
    """A passing outage of something the registry depends on: 503, and when to try again."""
    return RegistryError(UNKNOWN, message, status=503, headers={"Retry-After": str(RETRY_AFTER)})
