"""The token service: ``GET /token`` (HTTP Basic or anonymous) and the OAuth2 ``POST /token`` form.

``GET /token?service=<service>&scope=repository:team/app:pull,push`` is what
``docker``, ``podman``, ``skopeo``, ``crane`` and ``oras`` send after a 401
challenge; without credentials the token holds what anonymous clients may do.
``POST`` takes ``grant_type=password`` with ``username`` and ``password``
(``refresh_token`` grants are not offered: clients then keep the password
and use it again, which every client supports).
"""

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from registry import errors, requestlog, responses
from registry.auth import credentials, identity, scopes
from registry.auth.credentials import BadCredentials
from registry.auth.identity import Identity
from registry.errors import RegistryError
from registry.events import audit
from registry.events.models import LOGIN

log = logging.getLogger(__name__)

# What the token service answers a client whose credentials are wrong.
BASIC_CHALLENGE = 'Basic realm="crow"'


@csrf_exempt
@require_http_methods(["GET", "POST"])
def token(request: HttpRequest) -> HttpResponse:
    from registry.auth import tokens  # jwt and cryptography: see credentials.from_request

    params = request.POST if request.method == "POST" else request.GET
    try:
        _check_service(params.get("service"))
        caller = _post_login(request) if request.method == "POST" else _get_login(request)
        if not caller.anonymous:
            # A login is recorded here, where a client logs in once per session; Basic credentials
            # sent with each /v2/ request would make every pull a write (failures count everywhere).
            audit.record(LOGIN, actor=audit.Actor(caller.subject, credentials.client_address(request)))
        _record_user(request, caller)
        issued = tokens.issue(caller.subject, scopes.grant(caller, scopes.parse(params.getlist("scope"))))
    except BadCredentials as exc:
        error = RegistryError(errors.UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": BASIC_CHALLENGE})
        return responses.error(error)
    except RegistryError as error:
        return responses.error(error)
    except (OperationalError, InterfaceError) as exc:
        # Clients retry a 503 with Retry-After; a 500 page tells them the registry is broken.
        log.warning("database failed on %s /token: %s", request.method, exc)
        return responses.error(errors.unavailable(errors.DATABASE_UNAVAILABLE))
    response = JsonResponse(
        {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at.isoformat().replace("+00:00", "Z"),
        }
    )
    response["Cache-Control"] = "no-store"
    return response


def _record_user(request: HttpRequest, caller: Identity) -> None:
    """Who logged in, for the request's access-log line."""
    record = request.META.get(requestlog.RECORD)
    if record is not None:
        record.user = caller.subject or "anonymous"


def _check_service(service: str | None) -> None:
    if service and service != settings.CROW_TOKEN_SERVICE:
        raise RegistryError(
            errors.UNSUPPORTED,
            f"this token service issues tokens for {settings.CROW_TOKEN_SERVICE!r} only",
            detail={"service": service},
            status=400,
        )


def _get_login(request: HttpRequest) -> Identity:
    basic = credentials.basic(request)
    if basic is None:
        return identity.anonymous()
    return credentials.login(request, *basic)


def _post_login(request: HttpRequest) -> Identity:
    grant_type = request.POST.get("grant_type")
    if grant_type != "password":
        raise RegistryError(
            errors.UNSUPPORTED,
            f"grant_type {grant_type!r} is not supported; use password",
            detail={"grant_type": grant_type},
            status=400,
        )
    username = request.POST.get("username", "")
    if not username:
        raise BadCredentials("username is required")
    return credentials.login(request, username, request.POST.get("password", ""))
