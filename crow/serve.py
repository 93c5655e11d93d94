"""``python -m crow.serve``: CRoW served by granian, every setting from the environment.

granian (a Rust HTTP server) holds each connection on its event loop, where a
connection that waits costs memory, not a thread; ``crow.asgi`` answers hot
reads there and runs Django in a few threads per worker (``crow.bridge``).

Settings (``.env.example`` documents each): ``CROW_BIND`` (or ``PORT`` on
127.0.0.1), ``CROW_WORKERS``, ``CROW_THREADS``, ``CROW_HEADER_TIMEOUT``,
``CROW_BODY_THREADS``, ``CROW_BODY_TIMEOUT``, ``CROW_LOG_FORMAT``, ``CROW_LOG_LEVEL``,
``CROW_GRACEFUL_TIMEOUT``, ``CROW_MAX_CONNECTIONS``, ``CROW_CONNECTION_BUFFER``,
``PROMETHEUS_MULTIPROC_DIR``, ``CROW_WEBHOOK_WORKER`` (the webhook delivery worker, a thread
of one worker: ``crow.webhooks``), ``CROW_TLS_CERT`` / ``CROW_TLS_KEY`` (/ ``CROW_TLS_KEY_PASSWORD``): HTTPS,
TLS 1.2 or later. Fixed here:

- HTTP/1 only (``--http 1``): with ``auto``, granian never times out a fresh
  connection that sends nothing; on HTTP/1 the header timeout closes a fresh
  idle connection, a slow-header one, and a keep-alive connection that waits
  for its next request (hyper starts it whenever a connection waits for a request).
- No WebSockets; failed workers are respawned.
- Connections: each worker holds up to ``CROW_MAX_CONNECTIONS`` (10,000) at
  once, idle and slow ones included (granian's ``backpressure``; its default,
  512 a worker, let 1,000 idle connections stop every new one), beyond which
  new ones wait in the kernel's queue (``BACKLOG``). The soft limit on open
  files is raised to the hard one at start, for the workers to inherit: each
  connection is a descriptor, and the usual soft limit is 1,024.
- Preloading: the parent imports ``crow.asgi`` (Django set up, routes compiled,
  no database connection opened) and freezes what it holds (``gc.freeze()``)
  before granian forks its workers, which then share those pages
  (``bench/servers.py`` measures PSS with ``CROW_PRELOAD=0`` to compare).
- Each worker listens on a socket of its own (granian's ``SO_REUSEPORT``), and
  the kernel spreads new connections over them, so keep-alive clients land on
  every worker. The flip side: a second server with the flag would share the
  port and half of the first one's connections, so a taken address is refused
  here first, as a plain bind refuses it.
- Logs: granian's access log is off; ``crow.recording`` writes one line per
  request, fast path included (``CROW_ACCESS_LOG``). With ``CROW_LOG_FORMAT=json``
  granian's own lines are JSON too.
- Metrics: every worker writes its values into files in one directory
  (prometheus-client's multiprocess mode), which any worker's ``/metrics``
  reads: ``PROMETHEUS_MULTIPROC_DIR`` if set (its old files are removed at
  start: counters restart with the server), else a private temporary
  directory removed at exit. It is set before anything imports the client.
- SIGTERM: each worker stops accepting, lets its in-flight requests finish,
  and is killed after ``CROW_GRACEFUL_TIMEOUT`` seconds if it has not.

A worker killed (``kill -9``, the out-of-memory killer) is respawned; the
connections the kernel had queued on its socket and not yet handed to it are
reset, unless the host sets ``net.ipv4.tcp_migrate_req=1`` (Linux 5.14+),
which moves them to another worker's socket.
"""

import atexit
import contextlib
import gc
import importlib
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import ssl
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from crow import env, webhooks

TARGET = "crow.asgi:application"  # what granian serves; crow.asgi reads threads() and body_timeout()
HEADER_TIMEOUT_MAX = 60  # seconds: granian's own bound on --http1-header-read-timeout
# Connections the kernel queues for the workers to accept (Linux caps it at net.core.somaxconn, 4096).
BACKLOG = 4096
# hyper's buffer per connection (granian's --http1-buffer-size): what a slow download holds besides
# granian's own file reads; hyper's default is 408 KiB.
CONNECTION_BUFFER = 65_536


@dataclass(frozen=True)
class Tls:
    cert: Path  # PEM: the server's certificate, then any intermediates
    key: Path  # PEM private key
    key_password: str | None


@dataclass(frozen=True)
class Settings:
    host: str | None  # None for a Unix socket
    port: int | None
    uds: Path | None
    workers: int
    threads: int
    body_threads: int
    header_timeout: int  # seconds
    body_timeout: int  # seconds
    graceful_timeout: int  # seconds
    log_format: str
    log_level: str
    preload: bool
    max_connections: int  # per worker
    connection_buffer: int  # bytes hyper buffers per connection, each way
    tls: Tls | None = None  # HTTPS when set

    @property
    def address(self) -> str:
        return f"unix:{self.uds}" if self.uds else f"{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def tls() -> Tls | None:
    """``CROW_TLS_CERT`` and ``CROW_TLS_KEY`` (both or neither), checked by loading them as granian will."""
    cert, key = env.string("CROW_TLS_CERT", ""), env.string("CROW_TLS_KEY", "")
    if not cert and not key:
        return None
    if not (cert and key):
        raise ImproperlyConfigured("CROW_TLS_CERT and CROW_TLS_KEY go together: set both or neither")
    config = Tls(Path(cert), Path(key), env.secret("CROW_TLS_KEY_PASSWORD") or None)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(config.cert, config.key, config.key_password)
    except (OSError, ssl.SSLError) as exc:
        raise ImproperlyConfigured(
            f"CROW_TLS_CERT={cert!r} and CROW_TLS_KEY={key!r} cannot be loaded: {exc}"
        ) from None
    return config


def threads() -> int:
    """Django's threads per worker (``crow.asgi`` reads it in each worker)."""
    return env.integer("CROW_THREADS", 8, minimum=1)


def body_threads() -> int:
    """Threads per worker for requests with a body, which wait for their client's bytes (``crow.bridge``)."""
    return env.integer("CROW_BODY_THREADS", 1000, minimum=1)


def body_timeout() -> int:
    """Seconds a request body may send nothing before its read fails (``crow.bridge``)."""
    return env.duration("CROW_BODY_TIMEOUT", "30s")


def settings() -> Settings:
    bind = env.string("CROW_BIND", "") or f"127.0.0.1:{env.integer('PORT', 5000, minimum=1)}"
    host, port, uds = _parse_bind(bind)
    header_timeout = env.duration("CROW_HEADER_TIMEOUT", "30s")
    if not 1 <= header_timeout <= HEADER_TIMEOUT_MAX:
        raise ImproperlyConfigured(
            f"CROW_HEADER_TIMEOUT must be between 1s and {HEADER_TIMEOUT_MAX}s (granian's bound), "
            f"not {header_timeout}s"
        )
    return Settings(
        host=host,
        port=port,
        uds=uds,
        workers=env.integer("CROW_WORKERS", 2, minimum=1),
        threads=threads(),
        body_threads=body_threads(),
        header_timeout=header_timeout,
        body_timeout=body_timeout(),
        graceful_timeout=max(1, env.duration("CROW_GRACEFUL_TIMEOUT", "30s")),
        log_format=env.choice("CROW_LOG_FORMAT", "plain", ("plain", "json")),
        log_level=env.choice("CROW_LOG_LEVEL", "info", ("critical", "error", "warning", "info", "debug")),
        preload=env.boolean("CROW_PRELOAD", default=True),
        max_connections=env.integer("CROW_MAX_CONNECTIONS", 10_000, minimum=1),
        connection_buffer=env.integer("CROW_CONNECTION_BUFFER", CONNECTION_BUFFER, minimum=8192),
        tls=tls(),
    )


def _parse_bind(bind: str) -> tuple[str | None, int | None, Path | None]:
    if bind.startswith("unix:"):
        return None, None, Path(bind.removeprefix("unix:"))
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise ImproperlyConfigured(f"CROW_BIND must be HOST:PORT or unix:PATH, not {bind!r}")
    return host.strip("[]") or "0.0.0.0", int(port), None


def refuse_taken(config: Settings) -> None:
    """Exit with a message if something listens at the address (a plain bind, no ``SO_REUSEPORT``)."""
    if config.uds is not None:
        if config.uds.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(config.uds))
                except OSError:
                    return  # a stale socket file: granian replaces it
            raise SystemExit(f"cannot listen at {config.address}: Address already in use")
        return
    family = socket.AF_INET6 if ":" in (config.host or "") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As granian's own sockets: connections of a server that just stopped (TIME_WAIT) do not
        # hold the address, a socket that listens does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((config.host, config.port))
        except OSError as exc:
            raise SystemExit(f"cannot listen at {config.address}: {exc.strerror}") from None


def preload() -> None:
    """Load the application in this process and freeze it, for workers forked from here to share."""
    importlib.import_module(TARGET.partition(":")[0])  # Django set up, routes compiled, no connection

    gc.collect()
    gc.freeze()


def server(config: Settings):
    from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    return Server(
        TARGET,
        address=config.host or "127.0.0.1",
        port=config.port or 0,
        uds=config.uds,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,  # libuv's loop: the fast path and each body message cost less than on asyncio's
        workers=config.workers,
        backlog=BACKLOG,
        backpressure=config.max_connections,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=config.header_timeout * 1000, max_buffer_size=config.connection_buffer
        ),
        log_enabled=True,
        log_level=LogLevels(config.log_level),
        log_dictconfig=granian_logs(config.log_format),
        log_access=False,  # crow.recording's access log instead, fast path included
        respawn_failed_workers=True,
        workers_kill_timeout=config.graceful_timeout,
        working_dir=Path(__file__).resolve().parent.parent,
        ssl_cert=config.tls.cert if config.tls else None,
        ssl_key=config.tls.key if config.tls else None,
        ssl_key_password=config.tls.key_password if config.tls else None,
        # TLS 1.2 too (granian's default is 1.3 only): clients and proxies that stop at 1.2 still connect.
        ssl_protocol_min=SSLProtocols.tls12,
    )


class OmitListening(logging.Filter):
    """granian's ``Listening at:`` line: the banner (``announce``) has said where, once, with the
    workers and threads; a second line with the same URL only made the start harder to read."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Listening at:")


def granian_logs(log_format: str) -> dict:
    """granian's own lines (workers spawned, stopping) on stderr like the application's, as JSON when
    the logs are JSON, without its ``Listening at:`` line (``OmitListening``)."""
    formatter = (
        {"()": "crow.logformat.JsonFormatter"}
        if log_format == "json"
        else {"()": "logging.Formatter", "fmt": "[%(levelname)s] %(message)s"}
    )
    return {
        "formatters": {"generic": formatter},
        "filters": {"banner": {"()": "crow.serve.OmitListening"}},
        "handlers": {
            "console": {
                "formatter": "generic",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "filters": ["banner"],
            }
        },
        "loggers": {"_granian": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    }


def prepare_metrics_directory() -> Path:
    """The directory of the workers' metric files, empty; exported as ``PROMETHEUS_MULTIPROC_DIR``."""
    given = env.string("PROMETHEUS_MULTIPROC_DIR", "")
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="crow-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def raise_open_files_limit() -> None:
    """The soft limit on open files up to the hard one (the workers inherit it): a connection is a file."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def announce(message: str, config: Settings) -> None:
    """A line on stderr before the workers start, in the configured format."""
    if config.log_format == "json":
        from crow.logformat import JsonFormatter

        record = logging.LogRecord("crow.serve", logging.INFO, __file__, 0, message, None, None)
        message = JsonFormatter().format(record)
    print(message, file=sys.stderr, flush=True)


def warn_if_open() -> None:
    """Say it at every start, so nobody runs an open registry unknowingly (commands: check crow_auth.W001)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")
    from django.conf import settings as django_settings

    if django_settings.CROW_AUTH_DISABLED:
        print(
            "CRoW: CROW_AUTH_DISABLED is set: anyone may pull, push and delete anything",
            file=sys.stderr,
            flush=True,
        )


def stop_workers_once() -> None:
    """granian's workers stop at their first SIGINT or SIGTERM; a second one changes nothing.

    granian (2.8) stops a worker with ``WorkerSignal.set()``, which blocks, holding the GIL, when
    called a second time: a worker that heard two signals hung until granian killed it after
    ``CROW_GRACEFUL_TIMEOUT``, cutting off what it served. A terminal's Ctrl-C did it (the
    terminal signals the server and its workers, and the server then stops each worker too: one
    stop in three hung), as would systemd's default ``KillMode``. The workers are forked from this
    process and look ``set_loop_signals`` up when they start, so replacing it here reaches them;
    ``tests/test_worker_signals.py`` fails if a granian release moves it.
    """
    from granian import _signals
    from granian._granian import WorkerSignal

    def set_loop_signals(loop):
        stop = WorkerSignal()
        heard: list[int] = []

        def handler(signum, frame) -> None:
            if not heard:
                heard.append(signum)
                stop.set()

        for each in _signals._get_signals():
            try:
                loop.add_signal_handler(each, handler, each, None)
            except NotImplementedError:
                signal.signal(each, handler)
        return stop

    _signals.set_loop_signals = set_loop_signals


def main() -> None:
    config = settings()
    refuse_taken(config)
    raise_open_files_limit()
    prepare_metrics_directory()  # before the application (and prometheus-client) is imported
    if config.log_format == "json":
        logging.captureWarnings(True)  # a warning is a log line too, not plain text among JSON ones
    # Workers share the parent's pages only if granian forks them (its "spawn" would import anew).
    if config.preload and multiprocessing.get_start_method() == "fork":
        preload()
    announce(
        f"CRoW listening at {config.scheme}://{config.address}: "
        f"{config.workers} workers of {config.threads} threads",
        config,
    )
    warn_if_open()
    if webhooks.enabled():
        atexit.register(Path(webhooks.prepare()).unlink, missing_ok=True)
    stop_workers_once()
    server(config).serve()


if __name__ == "__main__":
    main()
