"""PostgreSQL's change notices, heard by one connection per worker process, and a barrier for writers.

The triggers of ``registry/migrations/0004_change_notices.py`` send
``NOTIFY crow_changes, '<repository name>'`` in every transaction that changes
or deletes a tag, manifest, blob, blob link or repository (``''`` after a
``TRUNCATE``). ``Listener`` keeps a connection that ``LISTEN``\\s, on the event
loop (the socket is watched with ``add_reader``; nothing blocks): each notice
drops that repository's answers from the cache, ``''`` flushes it.

- ``poll()`` reads what has already arrived, without waiting (one ``recv``):
  the fast path calls it before every cached answer, so a notice already
  delivered to the socket is never missed.
- ``sync()`` is a barrier: an empty query on the listening connection. A
  writer's backend signals every listening backend at its commit, before its
  client hears that the commit is done; a listening backend that receives the
  signal while idle sends the notices at once, and one that is busy sends them
  "just before we next go idle" (PostgreSQL's ``src/backend/commands/async.c``,
  its design notes 4 and 5), that is before its answer to our query ends with
  ReadyForQuery. So when ``sync()`` returns, every notice of a transaction that
  committed before it was called has been handled here: for a change made by
  another process or replica too. It takes no transaction id, writes nothing
  to the notice queue and wakes no other listener (a ``NOTIFY`` to ourselves
  would do all three: measured, 7,400 against 12,500 tag reads/s at 16
  connections). A writer calls it after its commit, before answering
  (``crow.fastpath.settled``); it is also the liveness probe.
- While the connection is down (lost, refused, or a barrier timed out), ``up``
  is False, the cache is flushed and the fast path defers everything to Django;
  the listener reconnects in the background and flushes again once it listens.
"""

import asyncio
import contextlib
import logging

import psycopg
from psycopg import pq

from crow.fastcache import Cache
from registry.mirror import routing

log = logging.getLogger(__name__)

# The channel the migration's triggers notify (it spells it too, frozen).
CHANNEL = "crow_changes"
# Seconds between liveness probes, and the longest a probe or a writer's barrier waits.
PROBE_INTERVAL = 10.0
SYNC_TIMEOUT = 2.0
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
APPLICATION_NAME = "crow notices"  # the listening connections, as pg_stat_activity shows them


class Listener:
    def __init__(self, conninfo: str, cache: Cache) -> None:
        self.conninfo = conninfo
        self.cache = cache
        self.up = False
        self._connection: psycopg.AsyncConnection | None = None
        self._pgconn: pq.abc.PGconn | None = None
        self._lost = asyncio.Event()
        self._waiting: list[asyncio.Future[bool]] = []
        # The waiters of the barrier on the wire; whether its answer has ended.
        self._in_flight: list[asyncio.Future[bool]] | None = None
        self._command_done = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def wait_up(self, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.up and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return self.up

    def poll(self) -> bool:
        """Handle whatever has arrived, without waiting; whether the listener is up."""
        pgconn = self._pgconn
        if not self.up or pgconn is None:
            return False
        try:
            pgconn.consume_input()
            while not pgconn.is_busy():
                if pgconn.get_result() is None:
                    self._command_done = self._in_flight is not None
                    break
            while (notice := pgconn.notifies()) is not None:
                self._handle(notice.extra.decode())
        except psycopg.Error as exc:
            self._down(f"the connection failed: {exc}")
            return False
        if pgconn.status != pq.ConnStatus.OK:
            self._down("the connection is broken")
            return False
        if self._in_flight is not None and self._command_done:
            waiters, self._in_flight = self._in_flight, None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)
            if self._waiting:
                self._send_sync()
        return self.up

    async def sync(self, timeout: float = SYNC_TIMEOUT) -> bool:
        """Wait until every notice committed before this call has been handled; False (and the
        cache flushed, the listener down) if that cannot be known within ``timeout``."""
        if not self.up:
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if self._in_flight is None:
            self._send_sync()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            self._down(f"a barrier did not come back within {timeout}s")
            return False

    def _handle(self, payload: str) -> None:
        if payload:
            self.cache.drop(payload)
        else:  # a TRUNCATE, or the upstreams changed (registry/migrations/0009_mirror_fetches.py)
            self.cache.flush()
            routing.invalidate()

    def _send_sync(self) -> None:
        pgconn = self._pgconn
        if pgconn is None or not self.up:
            return
        self._in_flight, self._waiting = self._waiting, []
        self._command_done = False
        try:
            pgconn.send_query(b"")
            if pgconn.flush():
                asyncio.get_running_loop().add_writer(pgconn.socket, self._flush)
        except psycopg.Error as exc:
            self._down(f"a barrier could not be sent: {exc}")

    def _flush(self) -> None:
        pgconn = self._pgconn
        try:
            if pgconn is None or not pgconn.flush():
                asyncio.get_running_loop().remove_writer(pgconn.socket if pgconn else -1)
        except psycopg.Error as exc:
            self._down(f"a barrier could not be sent: {exc}")

    def _down(self, reason: str) -> None:
        if self.up:
            log.warning("change notices: %s; the fast path's cache is off until they are back", reason)
        self.up = False
        self.cache.flush()
        pending = self._waiting + (self._in_flight or [])
        self._waiting, self._in_flight = [], None
        for waiter in pending:
            if not waiter.done():
                waiter.set_result(False)
        self._unwatch()
        self._lost.set()

    def _unwatch(self) -> None:
        if self._pgconn is not None:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(Exception):
                loop.remove_reader(self._pgconn.socket)
                loop.remove_writer(self._pgconn.socket)
        self._pgconn = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._connect()
                failures = 0
            except (psycopg.Error, OSError, TimeoutError) as exc:
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                log.warning("change notices: cannot listen (%s); again in %.1fs", exc, delay)
                await self._close()
                await asyncio.sleep(delay)
                continue
            while self.up:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), PROBE_INTERVAL)
                if self.up:
                    await self.sync()
            await self._close()
            await asyncio.sleep(RECONNECT_DELAYS[0])

    async def _connect(self) -> None:
        self._lost.clear()
        connection = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, application_name=APPLICATION_NAME
        )
        self._connection = connection
        await connection.execute(f"LISTEN {CHANNEL}")
        pgconn = connection.pgconn
        pgconn.nonblocking = 1
        self._pgconn = pgconn
        # Whatever changed while nobody listened is unknown: start from nothing.
        self.cache.flush()
        self.up = True
        asyncio.get_running_loop().add_reader(pgconn.socket, self.poll)
        log.info("change notices: listening on %s", CHANNEL)

    async def _close(self) -> None:
        self._unwatch()
        self.up = False
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 1.0)
