"""Access rules: grants to users and groups, public repositories, robot accounts.

Repositories are named by patterns (``registry.patterns``), so a rule may
name a repository that does not exist yet: a grant on ``team/*`` lets its
holder push the first image of ``team/new``.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import IntegrityError, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from registry import patterns

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


class LoginFailuresQuerySet(models.QuerySet["LoginFailures"]):
    def counts(self, keys: list[str]) -> dict[str, int]:
        """The failures counted under each of ``keys`` in windows that have not ended."""
        return dict(self.filter(key__in=keys, window_ends__gt=timezone.now()).values_list("key", "count"))

    def add(self, key: str, window: timedelta) -> None:
        """One more failure under ``key``: in its window, or in a new one if that ended.

        One UPDATE, atomic under the row's lock however many server processes count at
        once; the row is created on a key's first failure.
        """
        now = timezone.now()
        running = Q(window_ends__gt=now)
        updated = self.filter(key=key).update(
            count=Case(When(running, then=F("count") + 1), default=Value(1)),
            window_ends=Case(When(running, then=F("window_ends")), default=Value(now + window)),
        )
        if updated:
            return
        try:
            with transaction.atomic():
                self.create(key=key, count=1, window_ends=now + window)
        except IntegrityError:  # another process created it meanwhile: count in its row
            self.add(key, window)

    def sweep(self) -> None:
        """Forget ended windows: a key is created by any address an attacker sends from."""
        self.filter(window_ends__lte=timezone.now()).delete()


class LoginFailures(models.Model):
    """Failed logins counted under one key (an address, or an address and an account), shared by
    every server process (``registry.auth.ratelimit``). The key is a hash: usernames are client input.
    """

    key = models.CharField(max_length=64, unique=True)
    count = models.PositiveIntegerField()
    window_ends = models.DateTimeField()

    objects = LoginFailuresQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "login failures"
        # The sweep of ended windows.
        indexes = [models.Index(fields=["window_ends"], name="login_failures_window_ends")]

    def __str__(self) -> str:
        return f"{self.count} until {self.window_ends:%Y-%m-%d %H:%M:%S}"
