"""Registry tokens: short-lived JWTs signed with ES256, in the Docker token format.

Claims: ``iss``, ``sub`` ("" for an anonymous client), ``aud`` (the service),
``exp``, ``nbf``, ``iat``, ``jti`` and ``access``, a list of
``{"type": "repository", "name": ..., "actions": [...]}`` holding only what
was granted. Verification accepts ES256 with our key only (never ``none``,
never HMAC with the public key as secret), our issuer and audience, and a
token that is neither expired nor not yet valid.
"""

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from django.conf import settings

from registry import metrics
from registry.auth.keys import signing_key

ALGORITHM = "ES256"
# Clocks of server replicas may differ by this much.
LEEWAY = timedelta(seconds=10)
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]


class InvalidToken(Exception):
    """Why a token was refused; the message never contains the token."""


@dataclass(frozen=True)
class Issued:
    token: str
    expires_in: int
    issued_at: datetime


def issue(subject: str, access: list[dict], now: datetime | None = None) -> Issued:
    now = now or datetime.now(UTC)
    ttl = settings.CROW_TOKEN_TTL
    key = signing_key()
    claims = {
        "iss": settings.CROW_TOKEN_ISSUER,
        "sub": subject,
        "aud": settings.CROW_TOKEN_SERVICE,
        "exp": now + timedelta(seconds=ttl),
        "nbf": now,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "access": access,
    }
    token = jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})
    metrics.tokens_issued.inc()
    return Issued(token, ttl, now)


def verify(token: str) -> tuple[str, dict[str, frozenset[str]]]:
    """The subject and the repository access a valid token grants; ``InvalidToken`` otherwise.

    A client sends one token with every request of a pull or push: its
    signature (most of a request's CPU) is checked once per process, and a
    remembered token is still refused outside its validity window.
    """
    key = signing_key()
    cached = (token, key.kid, settings.CROW_TOKEN_SERVICE, settings.CROW_TOKEN_ISSUER)
    found = _verified.get(cached)
    if found is not None and found.valid_at(time.time()):
        return found.subject, found.access
    try:
        claims = jwt.decode(
            token,
            key.public,
            algorithms=[ALGORITHM],
            audience=settings.CROW_TOKEN_SERVICE,
            issuer=settings.CROW_TOKEN_ISSUER,
            leeway=LEEWAY,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(type(exc).__name__) from None
    verified = _Verified(
        claims["sub"], _repository_access(claims.get("access")), claims["nbf"], claims["exp"]
    )
    if len(_verified) >= VERIFIED_MAX:
        _verified.clear()
    _verified[cached] = verified
    return verified.subject, verified.access


@dataclass(frozen=True)
class _Verified:
    subject: str
    access: dict[str, frozenset[str]]
    not_before: float
    expires: float

    def valid_at(self, now: float) -> bool:
        leeway = LEEWAY.total_seconds()
        return self.not_before - leeway <= now < self.expires + leeway


# Tokens whose signature and claims were checked, by (token, key id, audience, issuer).
VERIFIED_MAX = 1000
_verified: dict[tuple[str, str, str, str], _Verified] = {}


def _repository_access(access: object) -> dict[str, frozenset[str]]:
    if not isinstance(access, list):
        raise InvalidToken("the access claim is not a list")
    granted: dict[str, frozenset[str]] = {}
    for entry in access:
        if not isinstance(entry, dict) or entry.get("type") != "repository":
            continue
        name, actions = entry.get("name"), entry.get("actions")
        if isinstance(name, str) and isinstance(actions, list):
            granted[name] = granted.get(name, frozenset()) | {a for a in actions if isinstance(a, str)}
    return granted
