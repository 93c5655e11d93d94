"""Access rules: grants to users and groups, public repositories, robot accounts.

Repositories are named by patterns (``registry.auth.patterns``), so a rule may
name a repository that does not exist yet: a grant on ``team/*`` lets its
holder push the first image of ``team/new``.
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from registry.auth import patterns

PULL, PUSH, DELETE = "pull", "push", "delete"
ACTIONS = (PULL, PUSH, DELETE)


class Actions(models.Model):
    """Which of pull, push and delete a rule allows; each implies nothing else.

    The fields are ``may_<action>``: a field called ``delete`` would hide ``Model.delete()``.
    """

    may_pull = models.BooleanField("pull", default=True)
    may_push = models.BooleanField("push", default=False)
    may_delete = models.BooleanField("delete", default=False)

    class Meta:
        abstract = True

    @staticmethod
    def flags(actions: frozenset[str] | set[str]) -> dict[str, bool]:
        """The fields' values for a set of actions: ``Grant(**Actions.flags({"pull"}))``."""
        return {f"may_{action}": action in actions for action in ACTIONS}

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(action for action in ACTIONS if getattr(self, f"may_{action}"))

    @property
    def actions_display(self) -> str:
        return ",".join(action for action in ACTIONS if action in self.actions) or "-"


class Grant(Actions):
    """Actions on the repositories a pattern covers, for one user or one group."""

    pattern = models.CharField(
        max_length=257, validators=[patterns.validate], help_text="team/app, team/* or *"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="grant_to_user_or_group",
            )
        ]
        # A user's rules are read with "user = ? OR group IN (...)": the foreign keys' indexes serve it.

    def __str__(self) -> str:
        return f"{self.actions_display} on {self.pattern} for {self.user or self.group}"


class PublicPattern(models.Model):
    """Repositories anyone may pull (anonymous clients too, when CROW_ANONYMOUS_PULL is on); never push."""

    pattern = models.CharField(
        max_length=257, unique=True, validators=[patterns.validate], help_text="team/app, team/* or *"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "public repository pattern"

    def __str__(self) -> str:
        return self.pattern


ROBOT_NAME = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$"
ROBOT_PREFIX = "robot$"


class RobotQuerySet(models.QuerySet["Robot"]):
    def usable(self) -> "RobotQuerySet":
        return self.filter(revoked=False).filter(Q(expires__isnull=True) | Q(expires__gt=timezone.now()))


class Robot(Actions):
    """A named API token for automation; it logs in as ``robot$<name>`` with its secret.

    It may do what its own patterns and actions allow, and never more than its
    owner may (plus public pulls, like anyone). The secret is shown once, at
    creation; only its SHA-256 is kept (``registry.auth.robots``).
    """

    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(ROBOT_NAME, "lowercase letters, digits and . _ - between them")],
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="robots")
    patterns = models.TextField(
        validators=[patterns.validate_list], help_text="Repository patterns, one per line: team/app or team/*"
    )
    description = models.CharField(max_length=255, blank=True, default="")
    secret_hash = models.CharField(max_length=64, editable=False)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never")
    revoked = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)

    objects = RobotQuerySet.as_manager()

    def __str__(self) -> str:
        return self.username

    @property
    def username(self) -> str:
        return ROBOT_PREFIX + self.name

    @property
    def pattern_list(self) -> list[str]:
        return patterns.split(self.patterns)

    @property
    def usable(self) -> bool:
        return not self.revoked and (self.expires is None or self.expires > timezone.now())
