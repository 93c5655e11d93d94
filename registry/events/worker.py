"""The delivery worker's loop: dispatch new events, deliver what is due, sleep when idle.

``manage.py deliver_webhooks`` runs it; ``python -m crow.serve`` starts that
command as a child process (``CROW_WEBHOOK_WORKER``). Several may run at once
on PostgreSQL (rows are claimed with ``SKIP LOCKED``); on SQLite run one. A
database outage is waited out, never fatal.
"""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, connection

from registry.events import delivery, dispatch

log = logging.getLogger(__name__)


def run_once() -> int:
    """One round: events dispatched plus deliveries attempted."""
    return dispatch.dispatch() + delivery.deliver_due()


def run(stopping: Callable[[], bool] = lambda: False) -> None:
    while not stopping():
        try:
            busy = run_once()
        except (DatabaseError, InterfaceError) as exc:
            log.warning("webhook worker: the database failed (%s); retrying", exc)
            connection.close()
            busy = 0
        close_old_connections()
        if not busy:
            time.sleep(settings.CROW_WEBHOOK_POLL)
