"""The delivery worker's loop: dispatch new events, deliver what is due, sleep when idle.

``manage.py deliver_webhooks`` runs it, and ``python -m crow.serve`` in a
thread of one of its workers (``crow.webhooks``, ``CROW_WEBHOOK_WORKER``). Several may run at once
on PostgreSQL (rows are claimed with ``SKIP LOCKED``); on SQLite run one. A
database outage is waited out, never fatal.

Idle with an enabled webhook, it looks again every ``CROW_WEBHOOK_POLL``;
with none, every ``wakeups.IDLE_WAIT`` seconds, or as soon as a webhook is
created or enabled (``registry.events.wakeups``).
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, connection

from registry.events import delivery, dispatch, wakeups
from registry.events.models import Webhook

log = logging.getLogger(__name__)


def run_once() -> int:
    """One round: events dispatched plus deliveries attempted."""
    return dispatch.dispatch() + delivery.deliver_due()


def run(stopping: Callable[[], bool] = lambda: False) -> None:
    heard = wakeups.listener()
    try:
        while not stopping():
            try:
                busy = run_once()
            except (DatabaseError, InterfaceError) as exc:
                log.warning("webhook worker: the database failed (%s); retrying", exc)
                connection.close()
                busy = 0
            close_old_connections()
            if busy:
                continue
            if hooked():
                wakeups.wait(settings.CROW_WEBHOOK_POLL, stopping, heard)
            else:
                # SQLite sends no notices: ask for a webhook at the usual pace (one cheap read) instead.
                woken = stopping if heard is not None else lambda: stopping() or hooked()
                wakeups.wait(wakeups.IDLE_WAIT, woken, heard)
    finally:
        if heard is not None:
            heard.close()


def hooked() -> bool:
    """Whether an enabled webhook exists (True when that cannot be known: poll as usual)."""
    try:
        return Webhook.objects.enabled().exists()
    except (DatabaseError, InterfaceError):
        connection.close()
        return True
    finally:
        close_old_connections()
