"""Delivering webhooks: claim due deliveries, POST each, record the outcome, back off on failure.

Delivery is at least once: a delivery is claimed with a lease (its
``next_attempt`` moved past the longest a POST can take) in a short
transaction, POSTed outside any transaction, then marked delivered. A worker
killed between the POST and the mark leaves it due again when the lease
ends, and the receiver gets it twice: the event id (``id`` in the body, and
the ``X-Crow-Event`` header) is the same every time, for receivers to drop
repeats. Nothing is lost on a restart: the row stays until delivered.

A failure (no connection, a timeout, any answer but 2xx, a redirect) is
retried after 1 s, 2 s, 4 s ... at most ``CROW_WEBHOOK_RETRY_MAX``; after
``CROW_WEBHOOK_MAX_ATTEMPTS`` attempts, or once the delivery is
``CROW_WEBHOOK_MAX_AGE`` old, it is marked failed (kept, with its last error
and status, for the admin).
"""

import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from registry.events import envelope
from registry.events.models import Delivery

log = logging.getLogger(__name__)

BATCH = 20  # deliveries claimed at a time: a worker never holds many another could send
USER_AGENT = "crow-webhooks/1"
ERROR_LENGTH = 500  # characters of an error kept


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the receiver's HTTP status, None without an answer
    error: str  # "" when delivered

    @property
    def delivered(self) -> bool:
        return not self.error


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: urllib would turn the POST into a GET without the body."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def lease() -> timedelta:
    """How long a claimed delivery is left to its worker: longer than a POST can take."""
    return timedelta(seconds=2 * settings.CROW_WEBHOOK_TIMEOUT + 5)


def claim(now: datetime, limit: int = BATCH) -> list[Delivery]:
    """Due deliveries for this worker alone until the lease ends (others skip the locked rows)."""
    with transaction.atomic():
        due = list(
            Delivery.objects.due(now)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("webhook")[:limit]
        )
        if due:
            Delivery.objects.filter(id__in=[each.id for each in due]).update(next_attempt=now + lease())
    return due


def deliver_due(now: datetime | None = None) -> int:
    """Claim and send what is due; how many were attempted."""
    due = claim(now or timezone.now())
    for delivery in due:
        finish(delivery, post(delivery))
    return len(due)


def post(delivery: Delivery) -> Outcome:
    body = delivery.body.encode()
    request = urllib.request.Request(
        delivery.webhook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": envelope.MEDIA_TYPE,
            "User-Agent": USER_AGENT,
            envelope.SIGNATURE_HEADER: envelope.signature(delivery.webhook.secret, body),
            envelope.EVENT_ID_HEADER: str(delivery.event_id),
        },
    )
    try:
        with _opener.open(request, timeout=settings.CROW_WEBHOOK_TIMEOUT) as response:
            response.read(64 * 1024)
            return Outcome(response.status, "")
    except urllib.error.HTTPError as exc:
        return Outcome(exc.code, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(None, f"{type(exc).__name__}: {reason}"[:ERROR_LENGTH])


def finish(delivery: Delivery, outcome: Outcome) -> None:
    """Record an attempt: delivered, due again after a back-off, or failed for good."""
    now = timezone.now()
    attempts = delivery.attempts + 1
    changes: dict[str, object] = {
        "attempts": attempts,
        "last_attempt": now,
        "last_status": outcome.status,
        "last_error": outcome.error,
    }
    if outcome.delivered:
        changes |= {"status": Delivery.DELIVERED, "delivered": now}
    elif attempts >= settings.CROW_WEBHOOK_MAX_ATTEMPTS or now - delivery.created >= timedelta(
        seconds=settings.CROW_WEBHOOK_MAX_AGE
    ):
        changes["status"] = Delivery.FAILED
        log.warning(
            "webhook delivery %s to %s failed for good: %s", delivery.id, delivery.webhook.url, outcome.error
        )
    else:
        changes["next_attempt"] = now + backoff(attempts)
        log.info(
            "webhook delivery %s to %s failed (%s); retrying",
            delivery.id,
            delivery.webhook.url,
            outcome.error,
        )
    Delivery.objects.filter(id=delivery.id).update(**changes)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: 1 s, 2 s, 4 s ... capped."""
    return timedelta(seconds=min(settings.CROW_WEBHOOK_RETRY_MAX, 2 ** min(attempts - 1, 30)))
