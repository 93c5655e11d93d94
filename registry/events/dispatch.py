"""Audit rows that webhooks may want become deliveries: the outbox's fan-out.

A push writes its audit row ``pending`` in its own transaction (no webhook
lookup on the push's path); this turns pending rows into one ``Delivery`` per
matching webhook and clears the flag, in one transaction. Dispatchers running
at once skip each other's rows (``SKIP LOCKED`` on PostgreSQL), and a
delivery is unique per webhook and event, so nothing is delivered twice for
being dispatched twice. A webhook is told of events from its creation on.
"""

from django.db import transaction

from registry.events import envelope
from registry.events.models import AuditEvent, Delivery, Webhook

BATCH = 500


def dispatch(limit: int = BATCH) -> int:
    """Dispatch up to ``limit`` pending audit rows; how many there were."""
    with transaction.atomic():
        events = list(AuditEvent.objects.undispatched().select_for_update(skip_locked=True)[:limit])
        if not events:
            return 0
        hooks = list(Webhook.objects.enabled())
        deliveries = [
            Delivery(
                webhook=hook,
                event_id=event.event_id,
                action=event.action,
                repository=event.repository,
                body=envelope.body(event),
            )
            for event in events
            for hook in hooks
            if event.time >= hook.created and hook.wants(event.action, event.repository)
        ]
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        AuditEvent.objects.filter(id__in=[event.id for event in events]).update(pending=False)
    return len(events)
