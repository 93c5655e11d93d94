"""How long the audit log and the delivery history are kept: ``CROW_AUDIT_RETENTION_DAYS``, by ``gc``."""

from datetime import datetime, timedelta

from django.conf import settings

from registry.events.models import AuditEvent, Delivery

BATCH = 5000  # rows per DELETE: a long log is pruned without one huge transaction


def prune(now: datetime) -> int:
    """Delete audit rows, and finished deliveries, older than the retention; the audit rows deleted."""
    cutoff = now - timedelta(days=settings.CROW_AUDIT_RETENTION_DAYS)
    Delivery.objects.filter(created__lt=cutoff).exclude(status=Delivery.PENDING).delete()
    deleted = 0
    while True:
        ids = list(AuditEvent.objects.older_than(cutoff).values_list("id", flat=True)[:BATCH])
        if not ids:
            return deleted
        deleted += AuditEvent.objects.filter(id__in=ids).delete()[0]
