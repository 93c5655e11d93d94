"""What every /v2/ endpoint needs, in one decorator.

``endpoint(GET=..., PUT=...)`` builds the view for one URL: it picks the
operation by method (405 ``UNSUPPORTED`` otherwise), asks
``registry.auth.access.authorize`` whether the caller may do it, renders every
``RegistryError`` as the spec's JSON envelope, turns storage and database
outages into a retryable 503 (a full store into 507, no retry), gives the
database connection back to its pool before the response is sent
(``registry.db.connections``), and sets the API version and ``nosniff``
headers on every answer. It names the request in its access-log record
(``registry.requestlog``: operation, repository, reference, user) and counts
upload requests in ``crow_uploads_in_progress`` while they run.
"""

import logging
from collections.abc import Callable
from contextlib import nullcontext

from django.db import DataError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from registry import errors, metrics, references, requestlog, responses
from registry.auth.access import authorize
from registry.auth.credentials import client_address
from registry.auth.models import DELETE, PULL, PUSH
from registry.db import connections
from registry.errors import RegistryError
from registry.events import audit
from registry.maintenance import readonly
from registry.mediatypes import API_VERSION, API_VERSION_HEADER
from registry.mirror import policy
from registry.storage import StorageError, StorageFull

log = logging.getLogger(__name__)

Operation = Callable[..., HttpResponse]

# The action each method needs in the repository it names. Every method on an
# upload session (status, chunks, finish, cancel) is part of a push.
# What a read-only registry still answers (registry.maintenance.readonly): every other method writes.
READS = frozenset({"GET", "HEAD"})
ACTIONS = {"GET": PULL, "HEAD": PULL, "POST": PUSH, "PUT": PUSH, "PATCH": PUSH, "DELETE": DELETE}


def endpoint(**operations: Operation) -> Callable[..., HttpResponseBase]:
    allowed = ", ".join(sorted(operations))
    readable = ", ".join(sorted(READS.intersection(operations)))

    @csrf_exempt
    def view(request: HttpRequest, **kwargs: str) -> HttpResponseBase:
        operation = operations.get(request.method or "")
        record = _named(request, kwargs)
        try:
            _check_name(request, kwargs.get("name"))
            if operation is None:
                raise RegistryError(
                    errors.UNSUPPORTED,
                    f"{request.method} is not supported on this endpoint",
                    headers={"Allow": allowed},
                )
            action = _action(request.method or "", kwargs)
            caller = authorize(request, kwargs.get("name"), action)
            if action == PUSH and kwargs.get("name"):
                policy.refuse_push(kwargs["name"])
            if record is not None:
                record.user = caller.subject
            if request.method not in READS:
                readonly.check_writable(readable)
            uploading = record is not None and record.operation in requestlog.UPLOADS
            with (
                audit.acting(audit.Actor(caller.subject or audit.ANONYMOUS, client_address(request))),
                metrics.uploads_in_progress.track_inprogress() if uploading else nullcontext(),
            ):
                response = operation(request, **kwargs)
        except RegistryError as error:
            response = responses.error(error, head=request.method == "HEAD")
        except StorageFull as exc:
            # Not "retry later": nothing changes until an operator frees space. The failed write left
            # nothing behind (registry.uploads), so the space it took is free again already.
            log.error("blob storage at %s is full on %s %s: %s", exc.where, request.method, request.path, exc)
            error = RegistryError(errors.UNKNOWN, "the registry's blob storage is full", status=507)
            response = responses.error(error, head=request.method == "HEAD")
        except StorageError as exc:
            log.warning("storage failed on %s %s: %s", request.method, request.path, exc)
            response = _unavailable(request, f"blob storage is unavailable, retry later: {exc}")
        except DataError as exc:
            # Input the database refuses (a NUL byte, a value too long) that no check caught first:
            # the request is wrong, not the server. The checks at the edge are the real fix.
            log.warning("the database refused a value on %s %s: %s", request.method, request.path, exc)
            error = RegistryError(
                errors.UNSUPPORTED, "the request holds a value the registry cannot use", status=400
            )
            response = responses.error(error, head=request.method == "HEAD")
        except (OperationalError, InterfaceError) as exc:
            # The database went away, restarted, or gave up on a lock: a retry redoes what did not
            # commit (every write is one statement or one transaction).
            log.warning("database failed on %s %s: %s", request.method, request.path, exc)
            response = _unavailable(request, errors.DATABASE_UNAVAILABLE)
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.path)
            response = responses.error(RegistryError(errors.UNKNOWN), head=request.method == "HEAD")
        # Done with the database: not held while the response streams at the client's pace.
        connections.release()
        return finished(response)

    return view


def finished(response: HttpResponseBase) -> HttpResponseBase:
    """What every /v2/ answer carries (``crow.fastpath`` builds its answers with it too)."""
    response[API_VERSION_HEADER] = API_VERSION
    # What SecurityMiddleware and CommonMiddleware add elsewhere; /v2/ runs without middleware
    # (crow/wsgi.py). Without a length, a server must close the connection or chunk the body, and
    # clients lose their keep-alive connection with every error answer.
    response["X-Content-Type-Options"] = "nosniff"
    if not response.streaming and not response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))  # type: ignore[attr-defined]
    return response


def _named(request: HttpRequest, kwargs: dict[str, str]) -> requestlog.Record | None:
    """This request's access-log record, named after its route (None outside ``crow.asgi``)."""
    record = request.META.get(requestlog.RECORD)
    if record is not None and request.resolver_match is not None:
        reference = kwargs.get("reference") or kwargs.get("digest") or kwargs.get("upload_id") or ""
        record.named(request.resolver_match.url_name, request.method, kwargs.get("name", ""), reference)
    return record


def _unavailable(request: HttpRequest, message: str) -> HttpResponse:
    return responses.error(errors.unavailable(message), head=request.method == "HEAD")


def _action(method: str, kwargs: dict[str, str]) -> str:
    return PUSH if "upload_id" in kwargs else ACTIONS[method]


def _check_name(request: HttpRequest, name: str | None) -> None:
    """What the routes cannot say about a name: its length, and slashes smuggled in as ``%2F``."""
    if name is None:
        return
    if len(name) > references.NAME_MAX_LENGTH:
        raise RegistryError(errors.NAME_INVALID, "repository names are limited to 255 characters")
    # The WSGI path is already decoded: only the raw request line shows an encoded slash.
    raw_path = (request.META.get("RAW_URI") or request.META.get("REQUEST_URI") or "").split("?")[0]
    if "%2f" in raw_path.lower():
        raise RegistryError(errors.NAME_INVALID, "a repository name cannot contain an encoded slash (%2F)")
