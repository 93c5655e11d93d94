"""Credentials a request carries: HTTP Basic (a user's password or a robot's secret) or a bearer token.

Every password or secret check goes through ``login``: refused while the
address or the username is rate-limited, and each failure is counted,
logged and recorded in the audit log (the username and address, never what
was typed).
"""

import base64
import binascii
import logging
import unicodedata

from django.contrib.auth import authenticate
from django.http import HttpRequest

from registry import metrics
from registry.auth import identity, ratelimit, robots
from registry.auth.identity import Identity
from registry.events import audit
from registry.events.models import LOGIN_FAILED

log = logging.getLogger(__name__)


class BadCredentials(Exception):
    """Credentials were given and are wrong; the message says why, without them."""


def client_address(request: HttpRequest) -> str:
    """The client's address, as ``crow.proxies.client_address`` defines it for the access log too:
    ``ForwardedHeaders``, the first middleware, has put it in ``REMOTE_ADDR``."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def basic(request: HttpRequest) -> tuple[str, str] | None:
    """The username and password of an ``Authorization: Basic`` header, None without one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise BadCredentials("malformed Basic credentials") from None
    username, separator, password = decoded.partition(":")
    if not separator or not username:
        raise BadCredentials("malformed Basic credentials")
    return username, password


def bearer(request: HttpRequest) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def login(request: HttpRequest, username: str, password: str) -> Identity:
    """The user or robot, or ``BadCredentials``; TOOMANYREQUESTS while rate-limited."""
    address = client_address(request)
    ratelimit.check(address, username)
    found = _check_password(request, username, password) if _possible(username, password) else None
    if found is None:
        ratelimit.failed(address, username)
        audit.record(LOGIN_FAILED, actor=audit.Actor(_printable(username), address))
        metrics.failed_logins.inc()
        log.warning("failed login for %r from %s", username, address)
        raise BadCredentials("wrong username or password")
    return found


def _possible(username: str, password: str) -> bool:
    """Whether any account could have these credentials: no username holds a control character
    (and PostgreSQL refuses NUL in a query), no password set through Django's forms holds NUL.

    Impossible ones are wrong credentials like any other, counted as a failure: never a 500.
    """
    return "\x00" not in password and not any(unicodedata.category(char) == "Cc" for char in username)


def _printable(username: str) -> str:
    """The username as the audit log keeps it: control characters (NUL, which PostgreSQL refuses,
    included) as ``?``, and no longer than the column."""
    return "".join("?" if unicodedata.category(char) == "Cc" else char for char in username)[:160]


def _check_password(request: HttpRequest, username: str, password: str) -> Identity | None:
    if robots.is_robot_username(username):
        robot = robots.authenticate(username, password)
        return identity.of_robot(robot) if robot is not None else None
    user = authenticate(request, username=username, password=password)
    return identity.of_user(user) if user is not None else None


def from_request(request: HttpRequest) -> Identity:
    """Who the request's credentials say it is: anonymous without any; ``BadCredentials`` if wrong."""
    token = bearer(request)
    if token is not None:
        # Imported here: tokens bring jwt and cryptography (~10 MiB a process), which an open registry
        # (CROW_AUTH_DISABLED) never uses; with authentication on, AuthConfig.ready imports them at start-up.
        from registry.auth import tokens

        try:
            subject, access = tokens.verify(token)
        except tokens.InvalidToken as exc:
            log.info("refused a token from %s: %s", client_address(request), exc)
            raise BadCredentials(f"invalid token ({exc})") from None
        return identity.of_token(subject, access)
    credentials = basic(request)
    if credentials is None:
        return identity.anonymous()
    return login(request, *credentials)
