"""Scopes a client asks the token service for, and the part of them that is granted.

``repository:<name>:<actions>`` (actions comma-separated) asks for actions in
one repository; a client may ask for several scopes, in several ``scope``
parameters or space-separated in one. ``registry:catalog:*`` is granted to
anyone: the catalog lists only what its caller may pull. Scopes that are
malformed, or of other types, are granted nothing, as the Docker token
specification allows; a token is then still issued, with less access.
"""

from dataclasses import dataclass

from registry import references
from registry.auth import permissions
from registry.auth.identity import Identity
from registry.auth.models import ACTIONS

CATALOG_ACCESS = {"type": "registry", "name": "catalog", "actions": ["*"]}


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse(values: list[str]) -> list[Scope]:
    scopes = []
    for value in values:
        for text in value.split():
            scope = parse_one(text)
            if scope is not None:
                scopes.append(scope)
    return scopes


def parse_one(text: str) -> Scope | None:
    kind, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    if kind == "registry" and name == "catalog":
        return Scope(kind, name, frozenset({"*"}))
    if kind != "repository" or not references.is_name(name):
        return None
    wanted = frozenset(action for action in actions.split(",") if action)
    if "*" in wanted:
        wanted = frozenset(ACTIONS)
    return Scope(kind, name, wanted)


def grant(identity: Identity, wanted: list[Scope]) -> list[dict]:
    """The token's ``access`` claim: of what was asked, only what ``identity`` may do."""
    by_name: dict[str, set[str]] = {}
    catalog = False
    for scope in wanted:
        if scope.type == "registry":
            catalog = True
            continue
        allowed = scope.actions & permissions.actions(identity, scope.name)
        by_name.setdefault(scope.name, set()).update(allowed)
    access = [
        {"type": "repository", "name": name, "actions": [a for a in ACTIONS if a in actions]}
        for name, actions in by_name.items()
        if actions
    ]
    if catalog:
        access.append(dict(CATALOG_ACCESS))
    return access
