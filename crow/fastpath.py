"""Hot reads answered on the event loop, without Django, from a cache that never serves a moved tag.

``serve`` answers ``GET``/``HEAD /v2/<name>/manifests/<tag or digest>`` and
``GET``/``HEAD /v2/<name>/blobs/<digest>`` with exactly the status, headers
and body Django would send (the headers are built by ``registry.responses``
and ``registry.endpoint.finished``, the same functions), or returns False
having sent nothing and Django answers. It defers everything it cannot answer
exactly: other methods and paths, a query string, anything percent-encoded in
the raw path, a Host Django would refuse, a body, ``If-None-Match``, a
``Range`` on a blob GET, an index the ``Accept`` header does not take, a
missing manifest (Django tells a missing repository, tag and manifest apart), a
database error (Django renders the 503), a tag or a miss of a mirrored
repository (``registry.mirror``: a tag is re-validated after its trust
period, a miss is fetched from the upstream; a hit by digest is answered here,
and its pull recorded in a thread), and, unless ``CROW_AUTH_DISABLED``, any
request without a bearer token that ``registry.auth.tokens.verify`` accepts
and whose ``access`` grants pull on the name (Basic, anonymous and refused requests are Django's).
A missing blob is answered here (404 ``BLOB_UNKNOWN``, built by the same
functions as Django's): every blob a client pushes is first asked for with a
HEAD that misses, and deferring it would query twice. Blob GETs on the
filesystem store are sent with ``http.response.pathsend``
(zero copy); on S3 they are deferred (Django's presigned redirect).

The cache (``crow.fastcache``, per worker, ``CROW_FASTPATH_CACHE_BYTES``) is
filled by misses: the sync ``registry.db`` functions in a thread
(``asyncio.to_thread``), answered and kept unless a change notice arrived
meanwhile. It is used only while this process listens for PostgreSQL's change
notices (``crow.notices``); on SQLite, with ``CROW_FASTPATH=0``, or under
gunicorn (WSGI) there is no fast path at all.

What a client can rely on (read-your-writes):

- Before every cached answer, the notices already delivered to the listening
  socket are handled (``Listener.poll``, one non-blocking ``recv``).
- A write through this server (any PUT of a manifest, any DELETE, any write
  outside /v2/: the admin, the API) is answered only after this process's
  listener has seen every notice committed before the write's answer was
  ready (``settled``: an empty query round trip on the listening connection,
  bounded by ``SYNC_TIMEOUT``; past it the cache is flushed and off until the
  listener is back). So after a 201 or 202, this process never answers from
  before the write.
- A cached *tag* (``CROW_FASTPATH_FRESH_TAGS``, default on) is answered only
  after a barrier on this process's listener sent after the request arrived
  (shared by the tag reads of the moment): any change committed before the
  request, by any process or replica, has then been heard. So once a PUT or
  DELETE of a tag has been answered, no process answers the old digest: a
  hard guarantee, for one empty-query round trip per batch of tag reads
  (``tests/test_fastpath_changes.py`` checks it in a loop with two servers).
- Without it, and for answers by digest (a deleted manifest, an unlinked
  blob), another process drops the entry when PostgreSQL delivers the notice
  to its listener: it signals listeners at the writer's commit, but under load
  a reader can answer before that (seen: 1 of 40 tag moves on this machine).
- Writes made outside any server (``manage.py`` commands, ``psql``) notify
  the same way; without a barrier, readers see them once delivered.
"""

import asyncio
import logging
import os
import re

from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host

from crow import recording
from crow.fastcache import Answer, Cache, Headers
from crow.notices import SYNC_TIMEOUT, Listener
from registry import errors, mediatypes, responses
from registry.auth.models import PULL
from registry.db import blobs as blob_rows
from registry.db import manifests as manifest_rows
from registry.endpoint import finished
from registry.mirror import routing, usage
from registry.references import DIGEST, NAME, NAME_MAX_LENGTH, REFERENCE, Reference
from registry.storage import blob_store

log = logging.getLogger(__name__)

_MANIFEST = re.compile(rf"/v2/(?P<name>{NAME})/manifests/(?P<reference>{REFERENCE})")
_BLOB = re.compile(rf"/v2/(?P<name>{NAME})/blobs/(?P<digest>{DIGEST})")
# Request headers the fast path reads; any of them twice, and Django (which joins them) answers.
_READ = frozenset({b"host", b"authorization", b"accept"})
# Request headers that make an answer Django's: conditional reads, ranges, bodies, forwarded hosts.
_DEFER = frozenset({b"if-none-match", b"range", b"transfer-encoding", b"x-forwarded-host"})
_HOSTS_MAX = 64

_cache: Cache | None = None
_listener: Listener | None = None
_hosts: dict[bytes, bool] = {}


def enabled() -> bool:
    return (
        settings.CROW_FASTPATH and settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    )


async def startup() -> None:
    """Lifespan start: the cache and the listener (the fast path serves once it listens)."""
    global _cache, _listener
    if not enabled():
        return
    _cache = Cache(settings.CROW_FASTPATH_CACHE_BYTES)
    _listener = Listener(conninfo(settings.DATABASES["default"]), _cache)
    _listener.start()
    if not await _listener.wait_up(settings.CROW_DB_CONNECT_TIMEOUT or 5):
        log.warning("the fast path is off until change notices can be heard")


async def shutdown() -> None:
    global _cache, _listener
    if _listener is not None:
        await _listener.stop()
    _cache = _listener = None


def conninfo(database: dict) -> str:
    """A libpq connection string for Django's ``database`` settings, with its libpq options."""
    from psycopg.conninfo import make_conninfo

    ours = {"server_side_binding", "prepare_threshold", "pool", "isolation_level", "assume_role"}
    options = {key: value for key, value in database.get("OPTIONS", {}).items() if key not in ours}
    parts = {
        "dbname": database["NAME"],
        "user": database["USER"],
        "password": database["PASSWORD"],
        "host": database["HOST"],
        "port": database["PORT"],
    }
    return make_conninfo(**{key: value for key, value in parts.items() if value}, **options)


def changes(scope: dict) -> bool:
    """Whether Django's answer to this request may follow a change that the cache must see first."""
    method = scope["method"]
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    path = scope["path"]
    return method == "DELETE" or not path.startswith("/v2/") or (method == "PUT" and "/manifests/" in path)


def settled(send):
    """``send``, holding the answer's start until the listener has seen every change committed so far."""
    listener = _listener
    if listener is None:
        return send

    async def send_settled(message: dict) -> None:
        if message["type"] == "http.response.start":
            await listener.sync(SYNC_TIMEOUT)
        await send(message)

    return send_settled


async def serve(scope, receive, send) -> bool:
    """Answer ``scope`` and return True, or return False, having sent nothing, to let Django answer."""
    listener, cache = _listener, _cache
    if listener is None or cache is None or not listener.up:
        return False
    method = scope["method"]
    if (method != "GET" and method != "HEAD") or scope["query_string"] or b"%" in scope.get("raw_path", b"%"):
        return False
    path = scope["path"]
    match = _MANIFEST.fullmatch(path)
    kind = "m"
    if match is None:
        match = _BLOB.fullmatch(path)
        kind = "b"
        if match is None:
            return False
    name = match[1]
    if len(name) > NAME_MAX_LENGTH:
        return False
    reference = match[2]
    try:
        route = routing.route(name, cached_only=True)
    except routing.NotLoaded:  # the upstreams are read again (every CROW_MIRROR_ROUTES_TTL), in a thread
        try:
            route = await asyncio.to_thread(_route, name)
        except Exception:
            log.debug("the fast path deferred %s: the upstreams could not be read", path, exc_info=True)
            return False
    if route is not None and kind == "m" and not route.root and not _is_digest(reference):
        return False  # a mirrored tag is re-validated after its trust period: Django's
    head = method == "HEAD"
    headers: dict[bytes, bytes] = {}
    for header, value in scope["headers"]:
        if header in _READ:
            if header in headers:
                return False
            headers[header] = value
        elif (header in _DEFER or (header == b"content-length" and value.strip() != b"0")) and (
            header != b"range" or (kind == "b" and not head)
        ):
            return False
    if not _host_allowed(headers.get(b"host")):
        return False
    user = _may_pull(headers.get(b"authorization"), name)
    if user is None:
        return False
    pathsend = kind == "b" and not head
    if pathsend and "http.response.pathsend" not in scope.get("extensions", {}):
        return False
    if not listener.poll():
        return False
    key = (kind, name, reference)
    answer = cache.get(key)
    if answer is not None and kind == "m" and settings.CROW_FASTPATH_FRESH_TAGS and not _is_digest(reference):
        # A tag can move on any replica: wait until every change committed before this request arrived
        # has been heard (a barrier shared by the tag reads of the moment), then look again.
        if not await listener.sync():
            return False
        answer = cache.get(key)
    if answer is None:
        generation = cache.generation
        try:
            answer = await asyncio.to_thread(_manifest if kind == "m" else _blob, name, reference)
        except Exception:
            log.debug("the fast path deferred a miss on %s to Django", path, exc_info=True)
            return False
        if answer is None:
            if kind == "m" or route is not None:
                return False  # Django tells a missing repository, tag or manifest apart, and fetches
            # A blob HEAD before an upload misses by design: answer it here, not with a second query.
            recording.answered(scope, kind, head, name, reference, user)
            await _send_response(send, finished(responses.error(errors.blob_unknown(reference), head=head)))
            return True
        if listener.up:
            cache.store(key, answer, generation)
    if kind == "m" and not mediatypes.served_to(
        answer.media_type, headers.get(b"accept", b"").decode("latin-1")
    ):
        return False
    if pathsend and not (answer.path and os.path.exists(answer.path)):
        return False
    recording.answered(scope, kind, head, name, reference, user)
    if route is not None and not route.root and kind == "m" and usage.due(name):
        _in_background(usage.write_pull_of, name)
    await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
    if pathsend:
        await send({"type": "http.response.pathsend", "path": answer.path})
    else:
        await send({"type": "http.response.body", "body": b"" if head else answer.body})
    return True


_background: set[asyncio.Task] = set()


def _in_background(function, *args) -> None:
    """Run ``function`` in a thread, not waited for (the task is kept until it ends)."""
    task = asyncio.get_running_loop().create_task(asyncio.to_thread(function, *args))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _send_response(send, response) -> None:
    """A Django response, sent as Django's handler would have sent it."""
    await send({"type": "http.response.start", "status": response.status_code, "headers": _headers(response)})
    await send({"type": "http.response.body", "body": response.content})


def _is_digest(reference: str) -> bool:
    return reference.startswith(("sha256:", "sha512:"))


def _host_allowed(host: bytes | None) -> bool:
    """Whether Django's ``get_host()`` takes this Host (else it answers 400)."""
    if host is None:
        return False
    allowed = _hosts.get(host)
    if allowed is None:
        domain, _ = split_domain_port(host.decode("latin-1"))
        allowed = bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)
        if len(_hosts) < _HOSTS_MAX:
            _hosts[host] = allowed
    return allowed


def _may_pull(authorization: bytes | None, name: str) -> str | None:
    """Who, if ``registry.auth.access.authorize`` lets this request pull ``name`` without the database
    (the token's subject; None if it does not)."""
    if settings.CROW_AUTH_DISABLED:
        return "anonymous"  # registry.auth.identity.everyone()
    if authorization is None:
        return None
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return None
    # Here, not at the top: an open registry never loads the token code (jwt, cryptography; ~10 MiB a
    # process). With authentication on, registry.auth's AppConfig imported it at start-up already.
    from registry.auth import tokens

    try:
        subject, access = tokens.verify(token.strip())
    except Exception:  # refused (Django says why, and logs it) or unverifiable here
        return None
    return subject if PULL in access.get(name, ()) else None


def _headers(response) -> Headers:
    return [(header.lower().encode("latin-1"), value.encode("latin-1")) for header, value in response.items()]


def _route(name: str):
    close_old_connections()
    return routing.route(name)


def _manifest(name: str, reference: str) -> Answer | None:
    """The answer to a manifest GET (a HEAD sends its headers), read as ``registry.views.manifests`` does."""
    ref = Reference.parse(reference)
    close_old_connections()
    found = manifest_rows.served(name, tag=ref.tag, digest=ref.digest, content=True)
    if found is None:
        return None
    immutable = ref.digest is not None
    response = finished(
        responses.manifest(found.content, found.media_type, found.digest, immutable=immutable)
    )
    return Answer(_headers(response), found.content, found.media_type)


def _blob(name: str, digest: str) -> Answer | None:
    """The answer to a blob HEAD, whose headers a whole blob GET sends too, and the blob's file."""
    close_old_connections()
    found = blob_rows.linked(name, digest)
    if found is None:
        return None
    store = blob_store()
    path = str(store.path(found.key)) if hasattr(store, "path") else ""
    return Answer(_headers(finished(responses.blob_head(digest, found.size))), path=path)
