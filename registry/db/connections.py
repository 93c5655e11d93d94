"""This thread's database connection, given back to its pool while the request waits for a client.

With a pool (PostgreSQL: ``OPTIONS["pool"]`` in ``crow.settings``) a request
takes a connection at its first query, and Django would give it back when the
request ends: after the body's last byte arrived and the response's last byte
left. A request that streams an upload at the client's pace, or a download,
would hold its connection for as long as the client takes, minutes on a slow
link, and a pool's worth of such clients would stop every other request.
``release`` gives it back before such a wait; the next query takes one again
(Django connects on demand), so a claim's renewal or an upload's final save
holds one for milliseconds.

Not inside a transaction, which must keep its connection; and not without a
pool (SQLite): each thread keeps its own connection there, and no one waits for it.
"""

from django.db import connection


def release() -> None:
    """Give this thread's connection back to the pool, if it holds one and no transaction is open."""
    if connection.connection is None or connection.in_atomic_block:
        return
    if getattr(connection, "pool", None) is not None:
        connection.close()


def open_pool() -> None:
    """Open this process's pool and its first connection (PostgreSQL), for its first request to find
    one: a worker that opened it at its first request made that request (and the push it began)
    wait 15-20 ms more. A database that cannot be reached now is left to the requests (503)."""
    if getattr(connection, "pool", None) is None:
        return
    try:
        connection.ensure_connection()
    except Exception:  # noqa: BLE001 - the requests say it, with their own answers
        return
    finally:
        connection.close()  # back to the pool
