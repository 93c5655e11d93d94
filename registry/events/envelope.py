"""The JSON a webhook receives: the reference registry's notification envelope, and its signature.

``{"events": [{"id", "timestamp", "action", "target": {...}, "request":
{"addr"}, "actor": {"name"}, "source": {"addr"}}]}``, as distribution sends
it (docs: *Notifications*), one event per delivery, so that its consumers
adapt easily. ``action`` is distribution's ``push`` or ``delete`` (CRoW's
own action, e.g. ``tag_move``, is in ``crow.action``).
``X-Crow-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body
under the webhook's secret.
"""

import hashlib
import hmac
import json
import socket
from typing import Any

from registry.events.models import (
    CREATE_REPOSITORY,
    DELETE_BLOB,
    DELETE_MANIFEST,
    DELETE_REPOSITORY,
    DELETE_TAG,
    PUSH,
    TAG_MOVE,
    AuditEvent,
)

MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
SIGNATURE_HEADER = "X-Crow-Signature"
EVENT_ID_HEADER = "X-Crow-Event"

# distribution's action for each of ours it has one for.
_ACTIONS = {
    PUSH: "push",
    TAG_MOVE: "push",
    DELETE_TAG: "delete",
    DELETE_MANIFEST: "delete",
    DELETE_BLOB: "delete",
    DELETE_REPOSITORY: "delete",
    CREATE_REPOSITORY: "create",
}
_SOURCE = {"addr": socket.gethostname()}


def body(event: AuditEvent) -> str:
    """The delivery's body for ``event``, compact JSON (what is signed and sent, byte for byte)."""
    return json.dumps({"events": [_event(event)]}, separators=(",", ":"), sort_keys=True)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _event(event: AuditEvent) -> dict[str, Any]:
    crow: dict[str, Any] = {"action": event.action}
    if event.previous:
        crow["previous"] = event.previous
    return {
        "id": str(event.event_id),
        "timestamp": event.time.isoformat().replace("+00:00", "Z"),
        "action": _ACTIONS.get(event.action, event.action),
        "target": _target(event),
        "request": {"addr": event.address},
        "actor": {"name": event.actor},
        "source": _SOURCE,
        "crow": crow,
    }


def _target(event: AuditEvent) -> dict[str, Any]:
    target: dict[str, Any] = {"repository": event.repository}
    if event.digest:
        target["digest"] = event.digest
    if event.reference:
        target["tag"] = event.reference
    if event.media_type:
        target["mediaType"] = event.media_type
    if event.size is not None:
        target["size"] = event.size
        target["length"] = event.size  # distribution sends both
    return target
