"""The HTTP client to an upstream registry: manifests and blobs, anonymous, Basic or Docker token auth.

One ``urllib3`` pool per process (a dependency of boto3's botocore, pinned in
``requirements.txt``: requests is only a test dependency). A request goes out
with what last worked for its upstream and scope (a bearer token, Basic, or
nothing), or with the upstream's static token (a password without a username,
sent as ``Authorization: Bearer <password>``; a 401 then means it is refused);
a ``401`` is answered by its challenge:

- ``Bearer realm=...,service=...,scope=...`` (Docker Hub, GHCR, CRoW itself):
  a token is asked from ``realm`` (with Basic credentials if the upstream has
  them), kept until shortly before its ``expires_in`` (60 s when unsaid), and
  the request sent again once;
- ``Basic``: sent again with the credentials, if there are any.

A 401 or 403 to a request that carried a bearer token from a token server
means "not found" (Docker Hub's answer for a repository that does not exist).

Credentials appear in no log line and no error message: errors name the
upstream's prefix and URL path and the status. Timeouts come from
``CROW_MIRROR_CONNECT_TIMEOUT`` and ``CROW_MIRROR_READ_TIMEOUT``; blobs are read
in ``CHUNK`` pieces. Redirects are followed (Docker Hub sends blobs to a CDN);
urllib3 drops ``Authorization`` on a redirect to another host.
"""

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import urllib3
from django.conf import settings

from registry import errors, mediatypes, metrics
from registry.errors import RegistryError
from registry.mirror.routing import UpstreamConfig

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
TOKEN_LIFETIME_DEFAULT = 60  # seconds, when the token server does not say (the Docker token spec's default)
TOKEN_MARGIN = 10  # seconds before its expiry that a token is no longer used
TOKEN_LIFETIME_MAX = 24 * 3600  # seconds a token is kept at most, whatever its server says
MAX_TOKEN_RESPONSE = 1024 * 1024
RETRY_AFTER_DEFAULT = 5
MAX_REDIRECTS = 5
SMALL_BODY = 64 * 1024  # what is read to the end to keep a connection, rather than closing it
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class UpstreamError(Exception):
    """The upstream did not give what was asked; ``retry_after`` (seconds) when it is worth retrying."""

    def __init__(self, message: str, status: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    def as_registry_error(self) -> RegistryError:
        """What a client hears when nothing stored can answer instead (a 404 is the caller's to tell)."""
        if isinstance(self, Refused):
            # A gateway's error: CRoW's credentials for the upstream are wrong, not the client's.
            return RegistryError(
                errors.UNKNOWN, f"{self}: the upstream refused CRoW's credentials", status=502
            )
        retry_after = {"Retry-After": str(self.retry_after or RETRY_AFTER_DEFAULT)}
        if self.status == 429:
            return RegistryError(
                errors.TOOMANYREQUESTS, f"{self}: the upstream is rate-limiting", headers=retry_after
            )
        return RegistryError(
            errors.UNKNOWN,
            f"{self}: the upstream is unavailable, retry later",
            status=503,
            headers=retry_after,
        )


class NotFound(UpstreamError):
    """404: the upstream has no such repository, tag, manifest or blob."""


class Refused(UpstreamError):
    """401/403 with whatever credentials CRoW has for it: a configuration problem, not an outage."""


class Unavailable(UpstreamError):
    """Unreachable, timed out, 429 or 5xx: serve what is stored, or ask the client to retry."""

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


@dataclass(frozen=True)
class FetchedManifest:
    content: bytes
    media_type: str
    digest: str | None  # Docker-Content-Digest, if the upstream sent it


@dataclass
class BlobDownload:
    """A blob's bytes as they arrive from the upstream; ``close`` it (or read it to the end)."""

    length: int | None
    response: urllib3.BaseHTTPResponse
    prefix: str

    def chunks(self) -> Iterator[bytes]:
        counter = metrics.mirror_blob_bytes.labels(self.prefix)
        try:
            for chunk in self.response.stream(CHUNK):
                counter.inc(len(chunk))
                yield chunk
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unavailable(f"upstream {self.prefix}: the blob download broke off: {_why(exc)}") from exc
        finally:
            self.close()

    def close(self) -> None:
        _discard(self.response)


_pool: urllib3.PoolManager | None = None
_pool_lock = threading.Lock()
_tokens: dict[tuple[int, str], tuple[str, float]] = {}  # (upstream id, scope) -> (Authorization, until)


def pool() -> urllib3.PoolManager:
    global _pool
    with _pool_lock:
        if _pool is None:
            timeout = urllib3.Timeout(
                connect=settings.CROW_MIRROR_CONNECT_TIMEOUT, read=settings.CROW_MIRROR_READ_TIMEOUT
            )
            # No retries (a client retries, and a pull waits for none of ours), but redirects followed:
            # Docker Hub sends blobs to its CDN. urllib3 drops Authorization when the host changes.
            retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=MAX_REDIRECTS)
            _pool = urllib3.PoolManager(num_pools=32, maxsize=16, timeout=timeout, retries=retries)
        return _pool


def forget_tokens() -> None:
    _tokens.clear()


class Client:
    """Requests to one upstream's repository ``remote``, with its credentials."""

    def __init__(self, upstream: UpstreamConfig, remote: str) -> None:
        self.upstream = upstream
        self.remote = remote
        self.scope = f"repository:{remote}:pull"

    def manifest(self, reference: str) -> FetchedManifest:
        response = self._request(
            "GET", f"manifests/{reference}", "manifest", {"Accept": _ACCEPT}, stream=True
        )
        try:
            content = response.read(mediatypes.MAX_MANIFEST_SIZE + 1)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unavailable(
                f"upstream {self.upstream.prefix}: the manifest broke off: {_why(exc)}"
            ) from exc
        finally:
            _discard(response)
        if len(content) > mediatypes.MAX_MANIFEST_SIZE:
            raise Unavailable(f"upstream {self.upstream.prefix}: the manifest is larger than CRoW takes")
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        return FetchedManifest(content, media_type, response.headers.get("Docker-Content-Digest"))

    def manifest_digest(self, reference: str) -> str | None:
        """The digest ``reference`` names at the upstream now (a HEAD); None if it does not say."""
        response = self._request("HEAD", f"manifests/{reference}", "manifest_head", {"Accept": _ACCEPT})
        _discard(response)
        return response.headers.get("Docker-Content-Digest")

    def blob_size(self, digest: str) -> int | None:
        response = self._request("HEAD", f"blobs/{digest}", "blob_head")
        _discard(response)
        return _length(response)

    def blob(self, digest: str) -> BlobDownload:
        response = self._request("GET", f"blobs/{digest}", "blob", stream=True)
        return BlobDownload(_length(response), response, self.upstream.prefix)

    def _request(
        self, method: str, path: str, kind: str, headers: dict[str, str] | None = None, stream: bool = False
    ) -> urllib3.BaseHTTPResponse:
        url = f"{self.upstream.url}/v2/{self.remote}/{path}"
        where = f"upstream {self.upstream.prefix} ({method} /v2/{self.remote}/{path})"
        outcome = "unavailable"
        try:
            headers = self._authorized(headers or {})
            response = self._send(method, url, headers, stream)
            if response.status == 401 and self._static_token:
                _discard(response)
                outcome = "refused"
                raise Refused(f"{where}: the upstream refused the token CRoW has for it", 401)
            if response.status == 401:
                _discard(response)
                authorization = self._authorize(response.headers.get("WWW-Authenticate", ""), where)
                headers = {**headers, "Authorization": authorization}
                response = self._send(method, url, headers, stream)
            if response.status in (401, 403) and headers.get("Authorization", "").startswith("Bearer "):
                # A valid token that does not open the repository: Docker Hub's answer for one that
                # does not exist (or is private to others). Not found, as far as CRoW can tell.
                _discard(response)
                outcome = "not_found"
                raise NotFound(f"{where}: HTTP {response.status} with a token for it", response.status)
            outcome = _outcome(response.status)
            if outcome != "ok":
                _discard(response)
                raise _error(response, where)
            return response
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(f"{where}: {_why(exc)}") from exc
        finally:
            metrics.mirror_upstream_requests.labels(self.upstream.prefix, kind, outcome).inc()

    @property
    def _static_token(self) -> bool:
        """A password without a username: a token the operator got, sent as it is (``Bearer``)."""
        return not self.upstream.username and bool(self.upstream.password)

    def _authorized(self, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` with the static token, or what last worked for this upstream and scope."""
        if self._static_token:
            return {**headers, "Authorization": f"Bearer {self.upstream.password}"}
        cached = _tokens.get((self.upstream.id, self.scope))
        if cached is not None and cached[1] > time.monotonic():
            return {**headers, "Authorization": cached[0]}
        return headers

    def _send(self, method: str, url: str, headers: dict[str, str], stream: bool) -> urllib3.BaseHTTPResponse:
        return pool().request(method, url, headers=headers, preload_content=not stream, redirect=True)

    def _authorize(self, challenge: str, where: str) -> str:
        """The Authorization header that answers ``challenge``, kept for this upstream and scope."""
        scheme, _, params = challenge.strip().partition(" ")
        if scheme.lower() == "bearer":
            authorization, lifetime = self._token(dict(_CHALLENGE_PARAM.findall(params)), where)
        elif scheme.lower() == "basic" and self.upstream.username:
            authorization, lifetime = self._basic(), 3600.0
        else:
            raise Refused(f"{where}: the upstream asks for credentials CRoW does not have", status=401)
        _tokens[(self.upstream.id, self.scope)] = (authorization, time.monotonic() + lifetime)
        return authorization

    def _basic(self) -> str:
        pair = f"{self.upstream.username}:{self.upstream.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _token(self, challenge: dict[str, str], where: str) -> tuple[str, float]:
        realm = challenge.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise Refused(f"{where}: the upstream's token realm {realm!r} is not a URL", status=401)
        query = {"scope": challenge.get("scope") or self.scope}
        if challenge.get("service"):
            query["service"] = challenge["service"]
        headers = {"Authorization": self._basic()} if self.upstream.username else {}
        outcome = "unavailable"
        url = f"{realm}?{urlencode(query)}"
        try:
            response = pool().request("GET", url, headers=headers, redirect=True, preload_content=False)
            try:
                outcome = _outcome(response.status)
                if outcome != "ok":
                    raise _error(response, f"upstream {self.upstream.prefix}'s token server")
                content = response.read(MAX_TOKEN_RESPONSE + 1)  # whatever the server sends, bounded
            finally:
                _discard(response)
            if len(content) > MAX_TOKEN_RESPONSE:
                raise ValueError("too long")
            body = json.loads(content)
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(f"upstream {self.upstream.prefix}'s token server: {_why(exc)}") from exc
        except ValueError as exc:
            outcome = "unavailable"
            raise Unavailable(f"upstream {self.upstream.prefix}'s token server sent no JSON token") from exc
        finally:
            metrics.mirror_upstream_requests.labels(self.upstream.prefix, "token", outcome).inc()
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise Refused(f"upstream {self.upstream.prefix}'s token server sent no token", status=401)
        return f"Bearer {token}", max(_lifetime(body.get("expires_in")) - TOKEN_MARGIN, 1.0)


_ACCEPT = ", ".join(sorted(mediatypes.MANIFESTS))


def _lifetime(expires_in: object) -> float:
    """A token's lifetime in seconds from its ``expires_in``; the spec's default if it is no number."""
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return min(float(expires_in), TOKEN_LIFETIME_MAX)
    return float(TOKEN_LIFETIME_DEFAULT)


def _length(response: urllib3.BaseHTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None


def _outcome(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status == 404:
        return "not_found"
    if status in (401, 403):
        return "refused"
    return "unavailable"


def _error(response: urllib3.BaseHTTPResponse, where: str) -> UpstreamError:
    status = response.status
    message = f"{where}: HTTP {status}"
    if status == 404:
        return NotFound(message, status)
    if status in (401, 403):
        return Refused(message, status)
    retry_after = response.headers.get("Retry-After", "")
    return Unavailable(message, status, int(retry_after) if retry_after.isdigit() else RETRY_AFTER_DEFAULT)


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back to the pool if what is left of the body is small (an error's, a
    manifest's), else close it: a connection with unread bytes must not be reused."""
    try:
        remaining = response.length_remaining
        if remaining is not None and remaining <= SMALL_BODY:
            response.drain_conn()
            response.release_conn()
        else:
            response.close()
    except (urllib3.exceptions.HTTPError, OSError):
        response.close()


def _why(exc: Exception) -> str:
    """What went wrong, in short (URLs here never hold credentials: they go in headers only)."""
    return f"{type(exc).__name__}: {exc}"[:300]
