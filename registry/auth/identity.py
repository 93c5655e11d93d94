"""Who is asking: nobody, a user, a robot, or anyone at all when the registry is open.

A request authenticated with a bearer token carries the token's ``access``
(repository name -> actions): for its lifetime the token, not the database,
says what the request may do. Its subject's user or robot is loaded only when
a decision needs the database (the catalog, mounts, telling 401 from 403).
"""

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model

from registry.auth.models import ROBOT_PREFIX, Robot


@dataclass
class Identity:
    # "" for an anonymous client, a username, or "robot$<name>".
    subject: str = ""
    user: Any = None
    robot: Robot | None = None
    token_access: dict[str, frozenset[str]] | None = None
    # The registry is open (CROW_AUTH_DISABLED): everything is allowed.
    open: bool = False
    # What permissions worked out for this identity, kept for the rest of the request.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    _loaded: bool = field(default=False, repr=False)

    @property
    def anonymous(self) -> bool:
        return not self.subject and not self.open

    def load(self) -> "Identity":
        """Fill in the subject's user or robot (once) for a token identity; a vanished one stays None."""
        if self._loaded or self.user is not None or self.robot is not None or not self.subject:
            return self
        self._loaded = True
        if self.subject.startswith(ROBOT_PREFIX):
            name = self.subject.removeprefix(ROBOT_PREFIX)
            self.robot = Robot.objects.usable().select_related("owner").filter(name=name).first()
        else:
            model = get_user_model()
            self.user = model.objects.filter(
                **{model.USERNAME_FIELD: self.subject, "is_active": True}
            ).first()
        return self


def anonymous() -> Identity:
    return Identity()


def everyone() -> Identity:
    return Identity(subject="anonymous", open=True)


def of_user(user: Any) -> Identity:
    return Identity(subject=user.get_username(), user=user)


def of_robot(robot: Robot) -> Identity:
    return Identity(subject=robot.username, robot=robot)


def of_token(subject: str, access: dict[str, frozenset[str]]) -> Identity:
    return Identity(subject=subject, token_access=access)
