"""The one decision every /v2/ request goes through: ``authorize(request, name, action)``.

- With ``CROW_AUTH_DISABLED`` everyone may do everything.
- ``name`` None (``/v2/``, the catalog): any valid credentials will do, an
  anonymous token included; none at all get the challenge, which is how
  clients learn where the token service is.
- A repository: a bearer token allows what its ``access`` claim lists for
  that name; Basic credentials, or none, what the database rules allow.

Refusals, the same whether the repository exists or not, so that nothing
tells a private repository from a missing one:

- no credentials, bad credentials, or an anonymous token: 401 UNAUTHORIZED
  with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``;
- a token that lacks an action its subject does have (a client asked for
  ``pull`` and then pushes): 401 with ``error="insufficient_scope"``, so the
  client asks for a new token;
- an authenticated user or robot without the action: 403 DENIED.
"""

from django.conf import settings
from django.http import HttpRequest
from django.urls import get_script_prefix

from registry import errors
from registry.auth import credentials, identity, permissions
from registry.auth.credentials import BadCredentials
from registry.auth.identity import Identity
from registry.auth.models import PULL, PUSH
from registry.errors import RegistryError

_ATTRIBUTE = "crow_identity"

# The token service's route (crow.urls). The realm is built from it, not with reverse(): the first
# reverse() in a process imports every URLconf, the management API's included (crow.urls says why not).
TOKEN_ROUTE = "token"


def authorize(request: HttpRequest, name: str | None, action: str) -> Identity:
    """The caller's identity if it may do ``action`` in repository ``name``; a RegistryError otherwise."""
    if settings.CROW_AUTH_DISABLED:
        return _remember(request, identity.everyone())
    scope = f"repository:{name}:{_challenge_actions(action)}" if name else None
    try:
        caller = credentials.from_request(request)
    except BadCredentials as exc:
        error = "invalid_token" if credentials.bearer(request) is not None else None
        raise _unauthorized(request, scope, str(exc), error) from None
    _remember(request, caller)
    if name is None:
        if caller.anonymous and caller.token_access is None:
            raise _unauthorized(request, None, "authentication required")
        return caller
    if action in _allowed(caller, name):
        return caller
    if caller.anonymous:
        raise _unauthorized(request, scope, "authentication required")
    if caller.token_access is not None and action in permissions.actions(caller, name):
        raise _unauthorized(
            request, scope, f"the token does not grant {action} on {name}", error="insufficient_scope"
        )
    raise RegistryError(errors.DENIED, detail={"name": name, "action": action})


def identity_of(request: HttpRequest) -> Identity:
    """The identity ``authorize`` found for this request."""
    return getattr(request, _ATTRIBUTE)


def challenge(request: HttpRequest, scope: str | None = None, error: str | None = None) -> str:
    parts = [f'realm="{realm(request)}"', f'service="{settings.CROW_TOKEN_SERVICE}"']
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


def realm(request: HttpRequest) -> str:
    """The token service's absolute URL: ``CROW_TOKEN_REALM``, or this server's own ``/token``."""
    return settings.CROW_TOKEN_REALM or request.build_absolute_uri(get_script_prefix() + TOKEN_ROUTE)


def _allowed(caller: Identity, name: str) -> frozenset[str]:
    if caller.token_access is not None:
        return caller.token_access.get(name, frozenset())
    return permissions.actions(caller, name)


def _challenge_actions(action: str) -> str:
    # Docker's clients ask for pull and push together when they push; the challenge says the same.
    return f"{PULL},{PUSH}" if action == PUSH else action


def _unauthorized(
    request: HttpRequest, scope: str | None, message: str, error: str | None = None
) -> RegistryError:
    return RegistryError(
        errors.UNAUTHORIZED, message, headers={"WWW-Authenticate": challenge(request, scope, error)}
    )


def _remember(request: HttpRequest, caller: Identity) -> Identity:
    setattr(request, _ATTRIBUTE, caller)
    return caller
