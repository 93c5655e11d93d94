"""The audit log, webhooks and their deliveries (``registry.events``); part of the ``registry`` app."""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from registry import patterns

# What an audit row records. A tag pushed where it named another manifest is a move.
PUSH, TAG_MOVE = "push", "tag_move"
DELETE_TAG, DELETE_MANIFEST, DELETE_BLOB = "delete_tag", "delete_manifest", "delete_blob"
CREATE_REPOSITORY, DELETE_REPOSITORY = "create_repository", "delete_repository"
LOGIN, LOGIN_FAILED = "login", "login_failed"
GRANT_SAVE, GRANT_DELETE = "grant_save", "grant_delete"
PUBLIC_SAVE, PUBLIC_DELETE = "public_save", "public_delete"
ROBOT_CREATE, ROBOT_SAVE, ROBOT_REVOKE, ROBOT_DELETE = (
    "robot_create",
    "robot_save",
    "robot_revoke",
    "robot_delete",
)
# The pull-through cache's upstreams (registry.mirror), changed in the admin, the API or by the start's sync.
UPSTREAM_SAVE, UPSTREAM_DELETE = "upstream_save", "upstream_delete"
READ_ONLY_ON, READ_ONLY_OFF = "read_only_on", "read_only_off"
ACTIONS = (
    PUSH,
    TAG_MOVE,
    DELETE_TAG,
    DELETE_MANIFEST,
    DELETE_BLOB,
    CREATE_REPOSITORY,
    DELETE_REPOSITORY,
    LOGIN,
    LOGIN_FAILED,
    GRANT_SAVE,
    GRANT_DELETE,
    PUBLIC_SAVE,
    PUBLIC_DELETE,
    ROBOT_CREATE,
    ROBOT_SAVE,
    ROBOT_REVOKE,
    ROBOT_DELETE,
    UPSTREAM_SAVE,
    UPSTREAM_DELETE,
    READ_ONLY_ON,
    READ_ONLY_OFF,
)

# The events a webhook subscribes to, and the audit actions each covers.
HOOK_EVENTS = {
    "push": (PUSH, TAG_MOVE),
    "delete": (DELETE_TAG, DELETE_MANIFEST, DELETE_BLOB, DELETE_REPOSITORY),
    "repository": (CREATE_REPOSITORY, DELETE_REPOSITORY),
}
# Actions a webhook may be told of: their rows are written pending, for ``registry.events.dispatch``.
HOOKED = frozenset(action for actions in HOOK_EVENTS.values() for action in actions)


class AuditEventManager(models.Manager["AuditEvent"]):
    def newest_first(self) -> models.QuerySet["AuditEvent"]:
        return self.order_by("-time", "-id")

    def undispatched(self) -> models.QuerySet["AuditEvent"]:
        return self.filter(pending=True).order_by("id")

    def older_than(self, cutoff) -> models.QuerySet["AuditEvent"]:
        return self.filter(time__lt=cutoff)


class AuditEvent(models.Model):
    """One change, written in the change's own transaction: who, from where, what, on what, when."""

    id = models.BigAutoField(primary_key=True)
    # The event's id in webhook deliveries: stable however often a delivery is retried.
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    time = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=32, choices=[(action, action) for action in ACTIONS])
    # A username, "robot$<name>", "anonymous", or "system:gc" / "system:retention".
    actor = models.CharField(max_length=160)
    address = models.CharField(max_length=64, blank=True, default="")
    repository = models.CharField(max_length=255, blank=True, default="")
    reference = models.CharField(max_length=128, blank=True, default="")
    digest = models.CharField(max_length=135, blank=True, default="")
    # What the tag named before a push moved it.
    previous = models.CharField(max_length=135, blank=True, default="")
    media_type = models.CharField(max_length=255, blank=True, default="")
    size = models.BigIntegerField(null=True, blank=True)
    # The rest of what an action has to say (a grant's pattern and actions, a robot's name).
    detail = models.JSONField(null=True, blank=True)
    # Not yet turned into webhook deliveries (only actions a webhook may want are written pending).
    pending = models.BooleanField(default=False)

    objects = AuditEventManager()

    class Meta:
        indexes = [
            # GET /api/audit/ newest first, its since/until, and the retention's delete.
            models.Index(fields=["time"], name="audit_time"),
            # GET /api/audit/?repository=...
            models.Index(fields=["repository", "time"], name="audit_repository_time"),
            # The dispatcher's scan: few rows, gone as soon as they are dispatched.
            models.Index(fields=["id"], name="audit_pending", condition=Q(pending=True)),
        ]

    def __str__(self) -> str:
        where = f"{self.repository}:{self.reference}" if self.reference else self.repository
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {where}".rstrip()


class WebhookManager(models.Manager["Webhook"]):
    def enabled(self) -> models.QuerySet["Webhook"]:
        return self.filter(enabled=True)


class Webhook(models.Model):
    """Where events on the repositories ``patterns`` cover are POSTed, signed with ``secret``."""

    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=255, help_text="HMAC-SHA256 key of X-Crow-Signature")
    events = models.JSONField(default=list, help_text=f"a list of {', '.join(HOOK_EVENTS)}")
    patterns = models.JSONField(default=list, help_text='repository patterns: ["team/*", "app", "*"]')
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    objects = WebhookManager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, action: str, repository: str) -> bool:
        wanted = any(action in HOOK_EVENTS.get(event, ()) for event in self.events)
        return wanted and any(patterns.matches(pattern, repository) for pattern in self.patterns)


class DeliveryManager(models.Manager["Delivery"]):
    def due(self, now) -> models.QuerySet["Delivery"]:
        return self.filter(status=Delivery.PENDING, next_attempt__lte=now).order_by("next_attempt", "id")


class Delivery(models.Model):
    """One event for one webhook: the outbox row, kept as history once delivered or failed."""

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField()
    action = models.CharField(max_length=32)
    repository = models.CharField(max_length=255, blank=True, default="")
    # The exact bytes POSTed and signed, the same on every attempt.
    body = models.TextField()
    status = models.CharField(
        max_length=16, choices=[(s, s) for s in (PENDING, DELIVERED, FAILED)], default=PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # A claimed delivery's lease ends here too: a worker killed mid-POST leaves it due again.
    next_attempt = models.DateTimeField(default=timezone.now)
    last_attempt = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True, help_text="the receiver's HTTP status")
    last_error = models.TextField(blank=True, default="")
    created = models.DateTimeField(default=timezone.now)
    delivered = models.DateTimeField(null=True, blank=True)

    objects = DeliveryManager()

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            # Dispatching an event twice (two dispatchers, a retry) delivers it once per webhook.
            models.UniqueConstraint(fields=["webhook", "event_id"], name="unique_delivery"),
        ]
        indexes = [
            # The worker's claim: pending deliveries that are due.
            models.Index(fields=["next_attempt"], name="delivery_due", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.repository} -> {self.webhook_id} ({self.status})"
