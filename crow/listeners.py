"""A listening socket per worker slot, held by gunicorn's arbiter: a dead worker's queue waits.

Each worker accepts from a ``SO_REUSEPORT`` socket of its own, and the kernel
spreads new connections over the sockets (``crow/gunicorn.conf.py`` says why).
When gunicorn creates those sockets (its ``reuse_port``), each one lives in its
worker: a worker killed (``kill -9``, the out-of-memory killer) takes its socket
with it, and every connection the kernel had queued there, accepted by the
kernel but not yet by the worker, is reset. Measured: 2 of 4 kill runs reset
the client's next request.

Here the arbiter creates the sockets, one per worker slot, and keeps them
open; each worker it forks takes the sockets of one slot and closes the
others' (so that a slot closed by the arbiter is closed for good). A worker
that dies leaves its socket, and its queue, to the worker that replaces it.
Slots follow the number of workers: a new one when workers are added
(``TTIN``), and one closed when a worker exits while there are more slots than
workers (``TTOU``). Workers spawned before old ones stop (a reload) share a slot
with them meanwhile, as every worker once shared one socket.
"""

import os
import socket
from typing import Any

from gunicorn.sock import BaseSocket, TCP6Socket, TCPSocket

_SLOT = "crow_slot"  # the attribute naming a worker's slot


class Slots:
    """The arbiter's sockets, slot by slot (all listeners of one slot: one per bound address)."""

    def __init__(self) -> None:
        self.enabled = False
        self._sockets: dict[int, list[BaseSocket]] = {}

    def open(self, server: Any) -> None:
        """Before gunicorn binds anything: the first slot, as the arbiter's listeners."""
        self.enabled = True
        server.LISTENERS = []
        self._add(server, 0)

    def assign(self, server: Any, worker: Any) -> None:
        """``pre_fork``, in the arbiter: a free slot, a new one for an added worker, else the least used."""
        if not self.enabled:
            return
        load = dict.fromkeys(self._sockets, 0)
        for other in server.WORKERS.values():
            slot = getattr(other, _SLOT, None)
            if slot in load:
                load[slot] += 1
        free = [slot for slot, workers in load.items() if workers == 0]
        if free:
            slot = min(free)
        elif len(self._sockets) < server.num_workers:
            slot = max(self._sockets) + 1
            self._add(server, slot)
        else:
            slot = min(load, key=lambda slot: (load[slot], slot))
        setattr(worker, _SLOT, slot)

    def take(self, worker: Any) -> None:
        """``post_fork``, in the worker: its slot's sockets; the others' copies are closed."""
        if not self.enabled:
            return
        mine = getattr(worker, _SLOT)
        for slot, listeners in self._sockets.items():
            if slot != mine:
                for listener in listeners:
                    listener.sock.close()
        worker.sockets = self._sockets[mine]

    def release(self, server: Any, worker: Any) -> None:
        """``child_exit``, in the arbiter: close the worker's slot if no worker will take it over."""
        slot = getattr(worker, _SLOT, None)
        if not self.enabled or slot not in self._sockets or len(self._sockets) <= server.num_workers:
            return
        if any(getattr(other, _SLOT, None) == slot for other in server.WORKERS.values()):
            return
        for listener in self._sockets.pop(slot):
            server.LISTENERS.remove(listener)
            listener.close()

    def _add(self, server: Any, slot: int) -> None:
        listeners = [_listen(address, server.cfg, server.log) for address in server.cfg.address]
        self._sockets[slot] = listeners
        # The arbiter's own list: gunicorn closes these when it stops, so that nothing more is queued.
        server.LISTENERS.extend(listeners)


def _listen(address: tuple[str, int], cfg: Any, log: Any) -> BaseSocket:
    kind = TCP6Socket if ":" in address[0] else TCPSocket
    with socket.socket(kind.FAMILY, socket.SOCK_STREAM) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        raw.bind(address)
        # gunicorn's own wrapper (non-blocking, inheritable, listening with its backlog) on a copy.
        return kind(address, cfg, log, fd=os.dup(raw.fileno()))


SLOTS = Slots()
