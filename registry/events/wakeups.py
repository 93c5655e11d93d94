"""What wakes an idle webhook worker: a notice that webhooks changed, or the end of its wait.

With no enabled webhook the worker has nothing to deliver, so it waits
``IDLE_WAIT`` seconds between rounds instead of polling every
``CROW_WEBHOOK_POLL`` (a round is a few queries: about 3 % of a core, once a
second, for nothing). A webhook created, enabled or changed ends the wait:

- on PostgreSQL, ``announce`` (a ``post_save`` / ``post_delete`` receiver on
  ``Webhook``) sends ``NOTIFY crow_webhooks`` with the change's commit, and
  the worker ``LISTEN``\\s on a connection of its own (``Listener``): it wakes
  at once, having made no query while it waited;
- on SQLite (one machine, no notices) the worker asks whether an enabled
  webhook exists once per ``CROW_WEBHOOK_POLL``: one indexed read of a local
  file instead of a round.

Events are not lost while the worker waits: their audit rows stay pending
until a round dispatches them, and a webhook hears of events from its creation
on (``registry.events.dispatch``).
"""

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models.signals import post_delete, post_save

from registry.events.models import Webhook

log = logging.getLogger(__name__)

CHANNEL = "crow_webhooks"
IDLE_WAIT = 30.0  # seconds between rounds while no webhook is enabled
SLICE = 1.0  # the longest a wait goes without looking at whether it should end


def announce(sender: type | None = None, **kwargs: Any) -> None:
    """Wake every listening worker (PostgreSQL; sent when the saving transaction commits)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {CHANNEL}")


def connect() -> None:
    post_save.connect(announce, sender=Webhook, dispatch_uid="webhooks_changed_saved")
    post_delete.connect(announce, sender=Webhook, dispatch_uid="webhooks_changed_deleted")


class Listener:
    """A connection of its own that ``LISTEN``\\s on ``CHANNEL``; reconnects at the next wait if lost."""

    def __init__(self) -> None:
        self._connection: Any = None

    def heard(self, timeout: float) -> bool:
        """Whether a notice came within ``timeout`` seconds (False at once, after a pause, if none can).

        True at once, too, when it has just begun listening again after losing its connection: a
        change made meanwhile was not heard, so the caller looks for itself.
        """
        if self._connection is None:
            if self.listen():
                return True
            time.sleep(timeout)
            return False
        try:
            for _notice in self._connection.notifies(timeout=timeout, stop_after=1):
                return True
        except Exception as exc:  # psycopg.Error, OSError: the connection is gone; the next wait reconnects
            log.warning("webhook worker: stopped listening for webhook changes (%s)", exc)
            self.close()
        return False

    def listen(self) -> bool:
        """Open the connection and ``LISTEN``; False (logged) if the database cannot be reached."""
        import psycopg

        try:
            self._connection = psycopg.connect(autocommit=True, **connection.get_connection_params())
            self._connection.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:  # psycopg.Error, OSError
            log.warning("webhook worker: cannot listen for webhook changes (%s); polling", exc)
            self.close()
            return False
        return True

    def close(self) -> None:
        found, self._connection = self._connection, None
        if found is not None:
            with contextlib.suppress(Exception):
                found.close()


def listener() -> Listener | None:
    """A listener where the database sends notices (PostgreSQL), else None; listening already, so
    that a webhook created after the worker's first look at them wakes it (one created between a
    look and a later ``LISTEN`` would go unheard for ``IDLE_WAIT``)."""
    if connection.vendor != "postgresql":
        return None
    found = Listener()
    found.listen()  # if it cannot, the first wait tries again
    return found


def wait(seconds: float, until: Callable[[], bool], heard: Listener | None) -> None:
    """Wait ``seconds``, less if a notice comes or ``until()`` (asked every ``SLICE``) says so."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        piece = min(SLICE, remaining)
        if heard is not None:
            if heard.heard(piece):
                return
        else:
            time.sleep(piece)
        if until():
            return
