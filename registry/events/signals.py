"""Access rules and upstreams changed, whoever changed them (the API, the admin, a shell): audit rows.

Grants, public patterns and robots are saved by Django's forms and
serializers in many places; the model signals see every one of them. A
robot revoked with an ``UPDATE`` (``registry.auth.robots.revoke``) is
recorded there. The rows are written in the saving transaction when there
is one (the admin's), right after the save otherwise.
"""

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models.signals import post_delete, post_save

from registry import patterns
from registry.auth.models import Grant, PublicPattern, Robot
from registry.events import audit
from registry.events.models import (
    GRANT_DELETE,
    GRANT_SAVE,
    PUBLIC_DELETE,
    PUBLIC_SAVE,
    ROBOT_CREATE,
    ROBOT_DELETE,
    ROBOT_SAVE,
    UPSTREAM_DELETE,
    UPSTREAM_SAVE,
)
from registry.mirror.models import Upstream


def grant_detail(grant: Grant) -> dict[str, Any]:
    return {
        "pattern": grant.pattern,
        "actions": sorted(grant.actions),
        "user": _holder(grant, "user", lambda user: user.get_username()),
        "group": _holder(grant, "group", lambda group: group.name),
    }


def _holder(grant: Grant, field: str, name: Callable[[Any], str]) -> str | None:
    """The name of the grant's user or group; its id when a cascade deleted it first."""
    holder_id = getattr(grant, f"{field}_id")
    if holder_id is None:
        return None
    try:
        return name(getattr(grant, field))
    except ObjectDoesNotExist:
        return f"#{holder_id}"


def robot_detail(robot: Robot) -> dict[str, Any]:
    return {
        "robot": robot.username,
        "patterns": robot.pattern_list,
        "actions": sorted(robot.actions),
        "revoked": robot.revoked,
    }


def _grant_saved(sender: type, instance: Grant, **kwargs: Any) -> None:
    audit.record(GRANT_SAVE, detail=grant_detail(instance))


def _grant_deleted(sender: type, instance: Grant, **kwargs: Any) -> None:
    audit.record(GRANT_DELETE, detail=grant_detail(instance))


def _public_saved(sender: type, instance: PublicPattern, **kwargs: Any) -> None:
    audit.record(PUBLIC_SAVE, detail={"pattern": instance.pattern})


def _public_deleted(sender: type, instance: PublicPattern, **kwargs: Any) -> None:
    audit.record(PUBLIC_DELETE, detail={"pattern": instance.pattern})


def _robot_saved(sender: type, instance: Robot, created: bool, **kwargs: Any) -> None:
    if kwargs.get("update_fields") == frozenset({"last_used"}):
        return
    audit.record(ROBOT_CREATE if created else ROBOT_SAVE, detail=robot_detail(instance))


def _robot_deleted(sender: type, instance: Robot, **kwargs: Any) -> None:
    audit.record(ROBOT_DELETE, detail=robot_detail(instance))


def upstream_detail(upstream: Upstream) -> dict[str, Any]:
    """What changed hands, never the password: how CRoW signs in is enough to see that it changed."""
    return {
        "prefix": upstream.prefix,
        "url": upstream.url,
        "auth": upstream.auth_kind,
        "tag_trust_seconds": upstream.tag_trust_seconds,
        "repositories": patterns.split(upstream.repositories),
        "unused_days": upstream.unused_days,
        "enabled": upstream.enabled,
        "from_environment": upstream.from_environment,
    }


def _upstream_saved(sender: type, instance: Upstream, **kwargs: Any) -> None:
    audit.record(UPSTREAM_SAVE, detail=upstream_detail(instance))


def _upstream_deleted(sender: type, instance: Upstream, **kwargs: Any) -> None:
    audit.record(UPSTREAM_DELETE, detail=upstream_detail(instance))


def connect() -> None:
    post_save.connect(_grant_saved, sender=Grant, dispatch_uid="audit_grant_saved")
    post_delete.connect(_grant_deleted, sender=Grant, dispatch_uid="audit_grant_deleted")
    post_save.connect(_public_saved, sender=PublicPattern, dispatch_uid="audit_public_saved")
    post_delete.connect(_public_deleted, sender=PublicPattern, dispatch_uid="audit_public_deleted")
    post_save.connect(_robot_saved, sender=Robot, dispatch_uid="audit_robot_saved")
    post_delete.connect(_robot_deleted, sender=Robot, dispatch_uid="audit_robot_deleted")
    post_save.connect(_upstream_saved, sender=Upstream, dispatch_uid="audit_upstream_saved")
    post_delete.connect(_upstream_deleted, sender=Upstream, dispatch_uid="audit_upstream_deleted")
