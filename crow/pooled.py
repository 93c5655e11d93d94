"""Pooled PostgreSQL connections that the server closed are dropped before a request uses them.

Connections come from a pool per process (``OPTIONS["pool"]`` in ``crow.settings``;
psycopg_pool, through Django). When PostgreSQL restarts, fails over or
terminates a backend, it sends a last error message and closes the socket; an
idle connection in the pool does not know until its next query fails, and that
request answers 503. The pool can check each connection it hands out, and
Django's ``CONN_HEALTH_CHECKS`` makes that check a query: a round trip on every
request (tens of microseconds on loopback, a network round trip elsewhere), to
detect an event of once a month.

Here the check polls the connection's socket without waiting: an idle
connection receives nothing (CRoW does not ``LISTEN``), so anything readable is
the server's goodbye, or the end of the connection. That connection is closed,
and so are the pool's other idle ones (``drain``): a restart or a failover took
them all, and the pool would back off a second and more between each dead one
it found, past the request's wait for a connection. The pool opens fresh ones
in its own threads and the request takes the first. Cost: one ``poll`` system
call per connection handed out, about a microsecond.

Django 5.2 passes its own ``check`` to the pool (None, or the query), so a
``check`` in ``OPTIONS["pool"]`` is a ``TypeError`` there (Django ticket
#37075 allows it in a later release): ``install`` sets this one on each pool,
at its first connection, where psycopg_pool keeps it (``_check``), and
``retry_for_waiting`` as its ``reconnect_failed`` (``_reconnect_failed``).
``tests/test_database_pool.py`` fails if a release moves them.
"""

import select
from typing import Any

import psycopg
from django.db.backends.base.base import BaseDatabaseWrapper


class DropClosedByServer:
    """The pool's ``check``: raise for a connection the server closed, after draining its pool."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def __call__(self, raw: psycopg.Connection) -> None:
        if _readable(raw):
            raw.close()  # the pool replaces a closed connection instead of handing it out again
            self.pool.drain()
            raise psycopg.OperationalError("the server closed this idle connection")


def retry_for_waiting(pool: Any) -> None:
    """The pool's ``reconnect_failed``: if requests wait for a connection, try again at once.

    The pool gives up on a connection attempt after ``reconnect_timeout`` and
    starts another only when a request next asks for one. A request that was
    already waiting then waits for nothing: after an outage, an attempt made
    while the database hung fails (its connect timeout) just after the database
    is back, and the requests waiting behind it would answer 503 although a
    new attempt would succeed. ``check`` (public) starts one; with nobody waiting,
    nothing is tried until a request asks.
    """
    if pool.get_stats().get("requests_waiting"):
        pool.check()


def install(connection: BaseDatabaseWrapper) -> None:
    """Check what ``connection``'s pool hands out, from now on (``connection_created``; idempotent)."""
    pool = getattr(connection, "pool", None)  # PostgreSQL's wrapper only; None without a pool
    if pool is not None and not isinstance(pool._check, DropClosedByServer):
        pool._check = DropClosedByServer(pool)
        # Where psycopg_pool keeps its reconnect_failed callback; in OPTIONS["pool"] a function
        # would be the one setting that is not plain data.
        pool._reconnect_failed = retry_for_waiting


def _readable(raw: psycopg.Connection) -> bool:
    try:
        poller = select.poll()
        poller.register(raw.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # OSError, or psycopg's error for a connection it already closed
        return True
