"""Robot accounts: create one (its secret is returned once), check a secret, revoke.

A secret is 32 random bytes, so its SHA-256 is all that is kept: nobody can
guess back from it, and checking costs microseconds, where a password hasher
(PBKDF2, a second per check by design) would slow every request a robot makes
with HTTP Basic. Comparison is constant-time, and an unknown robot costs the
same work as a known one.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from registry.auth.models import ROBOT_PREFIX, Robot
from registry.events import audit
from registry.events.models import ROBOT_REVOKE

SECRET_PREFIX = "crow_"
# last_used is written at most this often, not on every request.
LAST_USED_PRECISION = timedelta(minutes=1)
_DUMMY_HASH = "0" * 64


def new_secret() -> str:
    # A recognisable prefix lets secret scanners find leaked robot tokens.
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(
    owner,
    name: str,
    patterns: str,
    actions: frozenset[str],
    expires: datetime | None = None,
    description: str = "",
) -> tuple[Robot, str]:
    """The new robot and its secret, which is never shown again."""
    secret = new_secret()
    robot = Robot(
        name=name,
        owner=owner,
        patterns=patterns,
        description=description,
        expires=expires,
        secret_hash=hash_secret(secret),
        **Robot.flags(actions),
    )
    robot.full_clean()
    with transaction.atomic():
        robot.save()
    return robot, secret


def is_robot_username(username: str) -> bool:
    return username.startswith(ROBOT_PREFIX)


def authenticate(username: str, secret: str) -> Robot | None:
    """The usable robot that ``robot$<name>`` and ``secret`` name, or None."""
    name = username.removeprefix(ROBOT_PREFIX)
    robot = Robot.objects.usable().select_related("owner").filter(name=name).first()
    expected = robot.secret_hash if robot is not None else _DUMMY_HASH
    if not hmac.compare_digest(hash_secret(secret), expected) or robot is None:
        return None
    now = timezone.now()
    if robot.last_used is None or now - robot.last_used > LAST_USED_PRECISION:
        Robot.objects.filter(pk=robot.pk).update(last_used=now)
        robot.last_used = now
    return robot


def revoke(robot: Robot) -> None:
    with transaction.atomic():
        Robot.objects.filter(pk=robot.pk).update(revoked=True)
        robot.revoked = True
        audit.record(ROBOT_REVOKE, detail={"robot": robot.username})
