"""Gunicorn settings for CRoW, from the environment (see ``.env.example``).

gthread workers: the main thread of each worker heartbeats to the arbiter
while request threads stream blobs, so a long upload or download is never
mistaken for a hung worker and killed by ``timeout``.

Each worker listens on a socket of its own (``SO_REUSEPORT``), so the kernel
spreads new connections over the workers. On one shared socket, the worker
that woke first could accept every connection of a burst and keep them (HTTP
keep-alive): measured with 16 keep-alive clients, 4 runs in 8 put all of them
on one worker, which then served ~1,000 requests/s on one core while the
other two idled (2,000-2,600 otherwise). The arbiter holds those sockets, one per
worker slot, so that a worker that dies leaves the connections queued on its
socket to its replacement instead of resetting them (``crow.listeners``).

A connection queues at most ``NOTSENT_LOWAT`` bytes not yet sent
(``TCP_NOTSENT_LOWAT``): a blob download's ``sendfile`` then feeds the
socket as the client drains it instead of queuing as much as the send buffer
holds. Bytes in flight are not limited, so throughput over a network is
not either.
"""

import socket

from gunicorn.util import parse_address

from crow import earlyanswers, env
from crow.listeners import SLOTS

wsgi_app = "crow.wsgi:application"

bind = [env.string("CROW_BIND", "") or f"127.0.0.1:{env.integer('PORT', 5000, minimum=1)}"]
# gunicorn's own socket per worker dies with its worker: CRoW's arbiter holds them (on TCP, see on_starting).
reuse_port = False
worker_class = "gthread"
workers = env.integer("CROW_WORKERS", 3, minimum=1)
threads = env.integer("CROW_THREADS", 4, minimum=1)
# Only a worker whose main loop stops heartbeating for this long is restarted.
timeout = 30
graceful_timeout = 30
keepalive = 5

# One line per request on stdout; CROW_ACCESS_LOG=0 saves its cost (see .env.example).
accesslog = "-" if env.boolean("CROW_ACCESS_LOG", default=True) else None
errorlog = "-"
loglevel = env.string("CROW_LOG_LEVEL", "info").lower()

# Gunicorn's control socket defaults to one path per user: several servers on
# one machine (tests, `make run`) would fight over it, and CRoW does not use it.
control_socket_disable = True

# What Cloudflare and others use for HTTP. skopeo pulling 512 MiB over loopback, medians of 8
# alternating pulls, two runs: 1.55 and 1.68 s with it, 1.75 and 1.83 s without (skopeo's own CPU
# 1.68-1.78 s against 1.96-2.03 s; the reference registry: 1.78 and 1.81 s), for 0.1 s more of
# the server's CPU per 512 MiB (0.15-0.17 s; the reference's 0.14-0.17 s).
NOTSENT_LOWAT = 16 * 1024


def on_starting(server) -> None:
    """A socket per worker slot on TCP, after refusing a taken address; one shared socket otherwise.

    A Unix socket has one path, which each worker's bind would take from the
    others. And with ``SO_REUSEPORT`` the slots' binds would share a TCP port
    with any process that set the flag too: a second ``make run`` would serve
    half of the first one's connections instead of failing as a plain bind does.
    Runs before gunicorn binds anything, on the effective settings (``--bind`` on
    the command line overrides ``CROW_BIND``).
    """
    # gunicorn's own reading of a bind: (host, port) for TCP, a path or a file descriptor otherwise.
    addresses = {address: parse_address(address) for address in server.cfg.bind}
    if not all(isinstance(parsed, tuple) for parsed in addresses.values()):
        return
    for address, (host, port) in addresses.items():
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As gunicorn's own sockets: connections of a server that just stopped (TIME_WAIT) do not
            # hold the address, a socket that listens does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise SystemExit(f"cannot listen at {address}: {exc.strerror}") from None
    SLOTS.open(server)


def pre_fork(server, worker) -> None:
    SLOTS.assign(server, worker)


def post_fork(server, worker) -> None:
    """The worker's slot; ``TCP_NOTSENT_LOWAT`` on its TCP listeners (accepted connections inherit it)."""
    SLOTS.take(worker)
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if option is None:  # not on this platform
        return
    for listener in worker.sockets:
        if listener.FAMILY in (socket.AF_INET, socket.AF_INET6):
            listener.sock.setsockopt(socket.IPPROTO_TCP, option, NOTSENT_LOWAT)


def child_exit(server, worker) -> None:
    SLOTS.release(server, worker)


def pre_request(worker, req) -> None:
    """Let ``crow.earlyanswers`` close a connection whose request body it could not read to the end."""
    earlyanswers.serving(req)


def when_ready(server) -> None:
    if SLOTS.enabled:
        server.log.info("Listening at %s (a socket in each worker)", ", ".join(server.cfg.bind))
