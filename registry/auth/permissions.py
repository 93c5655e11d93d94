"""What an identity may do in a repository, from the database: one set of rules per identity.

- staff and superusers: everything;
- a user: their own namespace (``alice/*``: everything), and the grants to
  them and to their groups;
- a robot: its own patterns and actions, and never more than its owner;
- everybody: pull of public repositories. With ``CROW_ANONYMOUS_PULL`` off,
  "everybody" means any authenticated user or robot, never an anonymous one.

Rules are lists of (pattern, actions); they answer "which actions here" for
one name, and "which repositories" as a query for the catalog and mounts.
"""

from dataclasses import dataclass
from functools import reduce

from django.conf import settings
from django.db.models import Q, QuerySet

from registry import patterns, references
from registry.auth.identity import Identity
from registry.auth.models import ACTIONS, PULL, Grant, PublicPattern
from registry.models import Repository

ALL = frozenset(ACTIONS)
NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rules:
    """Actions on the repositories each pattern covers; ``everything`` allows all actions everywhere."""

    rules: tuple[tuple[str, frozenset[str]], ...] = ()
    everything: bool = False

    def actions(self, name: str) -> frozenset[str]:
        if self.everything:
            return ALL
        found = [actions for pattern, actions in self.rules if patterns.matches(pattern, name)]
        return reduce(frozenset.union, found, NOTHING)

    def q(self, action: str) -> Q | None:
        """The repositories where ``action`` is allowed, or None for all of them."""
        if self.everything:
            return None
        return patterns.q([pattern for pattern, actions in self.rules if action in actions])


@dataclass(frozen=True)
class Both:
    """What both rule sets allow: a robot's own rules within its owner's."""

    first: "Rules | Both"
    second: "Rules | Both"

    def actions(self, name: str) -> frozenset[str]:
        return self.first.actions(name) & self.second.actions(name)

    def q(self, action: str) -> Q | None:
        first, second = self.first.q(action), self.second.q(action)
        if first is None or second is None:
            return second if first is None else first
        return first & second


def rules_for(identity: Identity) -> "Rules | Both":
    """The identity's own rules, public repositories aside; read once per request."""
    if "rules" not in identity.cache:
        identity.cache["rules"] = _rules_for(identity)
    return identity.cache["rules"]


def _rules_for(identity: Identity) -> "Rules | Both":
    if identity.open:
        return Rules(everything=True)
    identity.load()
    if identity.robot is not None:
        robot = identity.robot
        own = Rules(tuple((pattern, robot.actions) for pattern in robot.pattern_list))
        return Both(own, _user_rules(robot.owner))
    if identity.user is not None:
        return _user_rules(identity.user)
    return Rules()


def _user_rules(user) -> Rules:
    if not user.is_active:
        return Rules()
    if user.is_staff or user.is_superuser:
        return Rules(everything=True)
    grants = Grant.objects.filter(Q(user=user) | Q(group__in=user.groups.all()))
    rules = [(grant.pattern, grant.actions) for grant in grants]
    username = user.get_username()
    if references.is_name(username) and "/" not in username:
        rules.append((patterns.namespace(username), ALL))
    return Rules(tuple(rules))


def _public(identity: Identity) -> list[str]:
    if identity.anonymous and not settings.CROW_ANONYMOUS_PULL:
        return []
    return list(PublicPattern.objects.values_list("pattern", flat=True))


def actions(identity: Identity, name: str) -> frozenset[str]:
    """What ``identity`` may do in repository ``name``, by the rules in the database."""
    own = rules_for(identity)
    allowed = own.actions(name)
    if allowed == ALL or PULL in allowed:
        return allowed
    if any(patterns.matches(pattern, name) for pattern in _public(identity)):
        allowed |= {PULL}
    return allowed


def pullable(identity: Identity) -> QuerySet[Repository]:
    """The repositories ``identity`` may pull: what the catalog lists and mounts may come from."""
    own = rules_for(identity).q(PULL)
    if own is None:
        return Repository.objects.all()
    return Repository.objects.filter(own | patterns.q(_public(identity)))


def sees_everything(identity: Identity) -> bool:
    return rules_for(identity).q(PULL) is None
