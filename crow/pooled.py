"""Pooled PostgreSQL connections that the server closed are dropped before a request uses them.

A thread keeps its connection between requests (``CROW_DB_CONN_MAX_AGE``).
When PostgreSQL restarts, fails over or terminates a backend, it sends a
last error message and closes the socket; the idle connection does not know
until its next query fails, and that request answers 503. Django's
``CONN_HEALTH_CHECKS`` would instead send ``SELECT 1`` before the first query
of every request: a round trip on each hot read (tens of microseconds on
loopback, a network round trip elsewhere), to detect an event of once a month.

Here, when a request starts, each idle connection's socket is polled without
waiting: an idle connection receives nothing (CRoW does not ``LISTEN``), so
anything readable there is the server's goodbye, or the end of the connection,
and the connection is closed; the request's first query connects again.
One ``poll`` system call per connection and request, about a microsecond.
"""

import select
from typing import Any

from django.db import connections

POSTGRESQL = "django.db.backends.postgresql"


def drop_closed_by_server(**kwargs: Any) -> None:
    """``request_started`` receiver: close each idle connection that has something to read."""
    # By settings first: each look-up of a thread's connection costs more than the poll.
    for alias, options in connections.settings.items():
        if options["ENGINE"] != POSTGRESQL:
            continue
        connection = connections[alias]
        raw = connection.connection
        if raw is not None and not connection.in_atomic_block and _readable(raw):
            connection.close()


def _readable(raw: Any) -> bool:
    try:
        poller = select.poll()
        poller.register(raw.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # OSError, or psycopg's error for a connection it already closed
        return True
