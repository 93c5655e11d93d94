"""A TCP proxy that a test controls, between a server and what it connects to (its database).

Modes, switched at any time and applied to open connections too:

- ``FORWARD``: bytes flow both ways;
- ``BLACKHOLE``: connections are accepted and whatever arrives is read and
  dropped, never forwarded and never answered: a hung peer that the
  operating system cannot detect, since every byte is acknowledged;
- ``REFUSE``: new connections are closed at once (open ones are too).

``received`` counts the bytes the upstream sent back (what a test reads as "downloaded").

``delay`` (seconds, 0 by default) holds what the upstream sends back for that
long before passing it on, in order: a slow way back from the database.
``rate`` (bytes a second, 0 by default: unbounded) slows what clients send to
the upstream to that pace, over each connection: a slow link to the server.
"""

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

FORWARD, BLACKHOLE, REFUSE = "forward", "blackhole", "refuse"
_POLL = 0.05  # seconds between looks at the mode and the stop flag
_BUFFER = 65536


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = FORWARD
        self.delay = 0.0
        self.rate = 0
        self.received = 0  # bytes the upstream sent back, over every connection (a download's count)
        self._counting = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def close(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == REFUSE:
                client.close()
            else:
                self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            if self.mode == FORWARD:
                upstream = socket.create_connection(self.upstream, timeout=10)
            self._pump(client, upstream)
        except OSError:
            pass
        finally:
            client.close()
            if upstream is not None:
                upstream.close()

    def _pump(self, client: socket.socket, upstream: socket.socket | None) -> None:
        ends = [client] if upstream is None else [client, upstream]
        while not self._stopped.is_set() and self.mode != REFUSE:
            readable, _, _ = select.select(ends, [], [], _POLL)
            for end in readable:
                data = end.recv(_BUFFER)
                if not data:
                    return  # one side closed: so does the proxy, both ways
                if self.mode == FORWARD and upstream is not None:
                    if end is upstream:
                        with self._counting:
                            self.received += len(data)
                    if end is upstream and self.delay:
                        time.sleep(self.delay)
                    if end is client and self.rate:
                        time.sleep(len(data) / self.rate)
                    (upstream if end is client else client).sendall(data)


@contextmanager
def proxy_to(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()
