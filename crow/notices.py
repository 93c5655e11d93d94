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
- ``sync()`` is a barrier: it sends a ``NOTIFY`` on a channel of this process's
  own and waits until it comes back. PostgreSQL delivers notices in commit
  order, so when it returns, every notice of a transaction committed before it
  was called has been handled here. A writer calls it after its commit, before
  answering (``crow.fastpath.settled``); it is also the liveness probe.
- While the connection is down (lost, refused, or a barrier timed out), ``up``
  is False, the cache is flushed and the fast path defers everything to Django;
  the listener reconnects in the background and flushes again once it listens.
"""

import asyncio
import contextlib
import itertools
import logging
import os

import psycopg
from psycopg import pq

from crow.fastcache import Cache

log = logging.getLogger(__name__)

# The channel the migration's triggers notify (it spells it too, frozen).
CHANNEL = "crow_changes"
# Seconds between liveness probes, and the longest a probe or a writer's barrier waits.
PROBE_INTERVAL = 10.0
SYNC_TIMEOUT = 2.0
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


class Listener:
    def __init__(self, conninfo: str, cache: Cache) -> None:
        self.conninfo = conninfo
        self.cache = cache
        self.up = False
        self._sync_channel = f"crow_sync_{os.getpid()}_{os.urandom(4).hex()}"
        self._connection: psycopg.AsyncConnection | None = None
        self._pgconn: pq.abc.PGconn | None = None
        self._lost = asyncio.Event()
        self._tokens = itertools.count(1)
        self._waiting: list[asyncio.Future[bool]] = []
        # The barrier on the wire (its token, its waiters); whether it came back; whether its command ended.
        self._in_flight: tuple[str, list[asyncio.Future[bool]]] | None = None
        self._token_seen = False
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
                self._handle(notice.relname.decode(), notice.extra.decode())
        except psycopg.Error as exc:
            self._down(f"the connection failed: {exc}")
            return False
        if pgconn.status != pq.ConnStatus.OK:
            self._down("the connection is broken")
            return False
        if self._in_flight is not None and self._token_seen and self._command_done:
            _, waiters = self._in_flight
            self._in_flight = None
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

    def _handle(self, channel: str, payload: str) -> None:
        if channel == self._sync_channel:
            if self._in_flight is not None and payload == self._in_flight[0]:
                self._token_seen = True
        elif payload:
            self.cache.drop(payload)
        else:
            self.cache.flush()

    def _send_sync(self) -> None:
        pgconn = self._pgconn
        if pgconn is None or not self.up:
            return
        token = str(next(self._tokens))
        self._in_flight, self._waiting = (token, self._waiting), []
        self._token_seen = self._command_done = False
        try:
            pgconn.send_query(f"NOTIFY {self._sync_channel}, '{token}'".encode())
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
        pending = self._waiting + (self._in_flight[1] if self._in_flight else [])
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
        connection = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        self._connection = connection
        await connection.execute(f"LISTEN {CHANNEL}")
        await connection.execute(f"LISTEN {self._sync_channel}")
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
