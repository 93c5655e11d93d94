"""Who may do what, in a backup: users, groups, grants, public patterns, robots, retention rules.

``dump()`` reads them (inside the backup's snapshot transaction) into the
JSON-able lists that ``registry.backup.format`` documents; ``load()`` writes
them back (inside the restore's transaction). Passwords and robot secrets
travel as the hashes the database holds, so nobody's credentials change and
no secret is ever in a backup.

Merging into a registry that has rows already keeps every existing row as it
is and adds the missing ones: a user, group, robot or public pattern is the
same one if its name is; a grant or retention rule if all its fields are.
An existing user or robot that differs from the backup's is reported, not changed.

Left out, and said so by ``backup`` and ``restore`` (``LEFT_OUT``): the
management API's tokens (Django REST framework keeps each key in clear, so a
backup holding them would hand every API caller's credentials, staff's too, to
whoever reads the backup; they are created again after a restore), webhooks
(their signing secrets likewise) and the pull-through cache's upstreams (their
credentials), the audit log and webhook deliveries (history, not state).

Retention rules are read through the app registry, so this module works with
and without the ``RetentionRule`` model; their fields are copied generically
(foreign keys by name), whatever the model holds.
"""

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from registry.auth.models import Grant, PublicPattern, Robot
from registry.db import repositories
from registry.models import Repository

USER_FIELDS = (
    "password",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
    "date_joined",
    "last_login",
)
ROBOT_FIELDS = ("patterns", "description", "secret_hash", "expires", "revoked", "created", "last_used")
ACTIONS = ("pull", "push", "delete")


LEFT_OUT = (
    "not in a backup: API tokens (credentials kept in clear; create them again after a restore: the"
    " admin's Tokens page or manage.py drf_create_token USER), webhooks and pull-through upstreams (their"
    " secrets too), the audit log and webhook deliveries"
)


def left_out() -> str:
    """``LEFT_OUT`` with how many API tokens and webhooks this installation has now."""
    tokens = apps.get_model("authtoken", "Token").objects.count()
    webhooks = apps.get_model("registry", "Webhook").objects.count()
    return f"{LEFT_OUT} (here now: {tokens} API tokens, {webhooks} webhooks)"


def retention_model() -> type[models.Model] | None:
    try:
        return apps.get_model("registry", "RetentionRule")
    except LookupError:
        return None


def dump() -> dict[str, list[dict[str, Any]]]:
    user_model = get_user_model()
    users = []
    for user in user_model.objects.prefetch_related("groups", "user_permissions__content_type").order_by(
        "pk"
    ):
        entry = {"username": user.get_username(), **{name: getattr(user, name) for name in USER_FIELDS}}
        entry["groups"] = sorted(group.name for group in user.groups.all())
        entry["permissions"] = sorted(_permission_name(p) for p in user.user_permissions.all())
        users.append(entry)
    groups = [
        {"name": group.name, "permissions": sorted(_permission_name(p) for p in group.permissions.all())}
        for group in Group.objects.prefetch_related("permissions__content_type").order_by("name")
    ]
    grants = [_grant(grant) for grant in Grant.objects.select_related("user", "group").order_by("pk")]
    public = [{"pattern": p.pattern, "created": p.created} for p in PublicPattern.objects.order_by("pattern")]
    robots = [
        {
            "name": robot.name,
            "owner": robot.owner.get_username(),
            **{name: getattr(robot, name) for name in ROBOT_FIELDS},
            **_actions(robot),
        }
        for robot in Robot.objects.select_related("owner").order_by("name")
    ]
    rules = []
    if (model := retention_model()) is not None:
        rules = [_generic(rule) for rule in model.objects.order_by("pk")]
    return {
        "users": users,
        "groups": groups,
        "grants": grants,
        "public_patterns": public,
        "robots": robots,
        "retention_rules": rules,
    }


def count_existing() -> dict[str, int]:
    """How many access rows there are, by kind (only the non-zero ones)."""
    counts = {
        "users": get_user_model().objects.count(),
        "groups": Group.objects.count(),
        "grants": Grant.objects.count(),
        "public patterns": PublicPattern.objects.count(),
        "robots": Robot.objects.count(),
    }
    if (model := retention_model()) is not None:
        counts["retention rules"] = model.objects.count()
    return {kind: n for kind, n in counts.items() if n}


def load(data: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    """Add what is missing; returns the rows added by kind and notes on what was kept or skipped."""
    added: dict[str, int] = {}
    notes: list[str] = []
    user_model = get_user_model()
    name_field = user_model.USERNAME_FIELD

    existing_groups = set(Group.objects.values_list("name", flat=True))
    new_groups = [g for g in data["groups"] if g["name"] not in existing_groups]
    Group.objects.bulk_create([Group(name=g["name"]) for g in new_groups])
    groups = {group.name: group for group in Group.objects.all()}
    for entry in new_groups:
        groups[entry["name"]].permissions.set(_permissions(entry["permissions"], notes))
    added["groups"] = len(new_groups)

    existing_users = {user.get_username(): user for user in user_model.objects.all()}
    new_users = []
    for entry in data["users"]:
        user = existing_users.get(entry["username"])
        if user is None:
            new_users.append(entry)
        elif any(_value(user, name) != entry[name] for name in USER_FIELDS if name != "last_login"):
            notes.append(
                f"user {entry['username']}: kept the existing account, which differs from the backup's"
            )
    user_model.objects.bulk_create(
        [
            user_model(**{name_field: e["username"], **{name: e[name] for name in USER_FIELDS}})
            for e in new_users
        ]
    )
    users = {user.get_username(): user for user in user_model.objects.all()}
    for entry in new_users:
        user = users[entry["username"]]
        user.groups.set([groups[name] for name in entry["groups"]])
        user.user_permissions.set(_permissions(entry["permissions"], notes))
    added["users"] = len(new_users)

    existing_grants = [_grant(g) for g in Grant.objects.select_related("user", "group")]
    new_grants = [g for g in data["grants"] if not _listed(g, existing_grants)]
    Grant.objects.bulk_create(
        [
            Grant(
                pattern=g["pattern"],
                user=users[g["user"]] if g.get("user") else None,
                group=groups[g["group"]] if g.get("group") else None,
                created=g["created"],
                **Grant.flags({action for action in ACTIONS if g[action]}),
            )
            for g in new_grants
        ]
    )
    added["grants"] = len(new_grants)

    existing_public = set(PublicPattern.objects.values_list("pattern", flat=True))
    new_public = [p for p in data["public_patterns"] if p["pattern"] not in existing_public]
    PublicPattern.objects.bulk_create([PublicPattern(**p) for p in new_public])
    added["public patterns"] = len(new_public)

    existing_robots = {robot.name: robot for robot in Robot.objects.all()}
    new_robots = []
    for entry in data["robots"]:
        robot = existing_robots.get(entry["name"])
        if robot is None:
            new_robots.append(entry)
        elif robot.secret_hash != entry["secret_hash"] or robot.patterns != entry["patterns"]:
            notes.append(f"robot {entry['name']}: kept the existing robot, which differs from the backup's")
    Robot.objects.bulk_create(
        [
            Robot(
                name=r["name"],
                owner=users[r["owner"]],
                **{name: r[name] for name in ROBOT_FIELDS},
                **Robot.flags({action for action in ACTIONS if r[action]}),
            )
            for r in new_robots
        ]
    )
    added["robots"] = len(new_robots)

    rules = data.get("retention_rules") or []
    model = retention_model()
    if rules and model is None:
        notes.append(f"skipped {len(rules)} retention rules: this installation has no retention rules")
    elif model is not None:
        existing_rules = [_generic(rule) for rule in model.objects.all()]
        new_rules = [r for r in rules if not _listed(r, existing_rules)]
        model.objects.bulk_create([model(**_from_generic(model, r)) for r in new_rules])
        added["retention rules"] = len(new_rules)
    return added, notes


def _grant(grant: Grant) -> dict[str, Any]:
    holder = {"user": grant.user.get_username()} if grant.user else {"group": grant.group.name}
    return {"pattern": grant.pattern, **holder, **_actions(grant), "created": grant.created}


def _actions(rule: Grant | Robot) -> dict[str, bool]:
    return {action: action in rule.actions for action in ACTIONS}


def _listed(entry: dict[str, Any], existing: list[dict[str, Any]]) -> bool:
    """Whether a row with the same fields exists (``created`` aside); compared as JSON would have them."""
    wanted = _comparable(entry)
    return any(_comparable(row) == wanted for row in existing)


def _comparable(entry: dict[str, Any]) -> dict[str, Any]:
    encoder = DjangoJSONEncoder()
    return {
        key: encoder.default(value) if _needs_encoding(value) else value
        for key, value in entry.items()
        if key != "created"
    }


def _needs_encoding(value: Any) -> bool:
    return value is not None and not isinstance(value, str | int | float | bool | list | dict)


def _value(instance: models.Model, name: str) -> Any:
    value = getattr(instance, name)
    return DjangoJSONEncoder().default(value) if _needs_encoding(value) else value


def _permission_name(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def _permissions(names: list[str], notes: list[str]) -> list[Permission]:
    found = []
    for name in names:
        app_label, codename = name.split(".", 1)
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is None:
            notes.append(f"skipped the unknown permission {name}")
        else:
            found.append(permission)
    return found


def _natural_key(instance: models.Model | None) -> str | None:
    if instance is None:
        return None
    if isinstance(instance, Repository):
        return instance.name
    if isinstance(instance, Group):
        return instance.name
    if isinstance(instance, get_user_model()):
        return instance.get_username()
    raise TypeError(f"a retention rule refers to a {type(instance).__name__}, which backups cannot name")


def _generic(instance: models.Model) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.is_relation:
            entry[field.name] = _natural_key(getattr(instance, field.name))
        else:
            entry[field.name] = field.value_from_object(instance)
    return entry


def _from_generic(model: type[models.Model], entry: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.name not in entry:
            continue
        value = entry[field.name]
        if field.is_relation:
            values[field.name] = None if value is None else _by_natural_key(field.related_model, value)
        else:
            values[field.name] = field.to_python(value)
    return values


def _by_natural_key(model: type[models.Model], name: str) -> models.Model:
    if model is Repository:
        return repositories.get_or_create(name)
    if model is Group:
        return Group.objects.get(name=name)
    user_model = get_user_model()
    return user_model.objects.get(**{user_model.USERNAME_FIELD: name})
