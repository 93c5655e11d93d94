"""The webhook delivery worker as a child of ``python -m crow.serve``, so ``make run`` needs no other command.

The server forks a keeper process beside granian's workers unless
``CROW_WEBHOOK_WORKER=0`` (a fleet runs ``manage.py deliver_webhooks`` apart,
once or a few times). The keeper forks the worker (``crow-webhooks`` in
``ps``; ``deliver_webhooks``' loop), forks it again when it exits (a crash,
``kill -9``), waiting a little longer each time it dies young, and stops it
when the server stops. Both ask the kernel for SIGTERM when their parent dies,
so a server killed with ``kill -9`` leaves no worker behind.

Forked, not started anew: the server forks them before granian starts, when
the application is loaded (``crow.serve.preload``) and the process has one
thread and no database connection, so they share the server's pages instead
of importing Django a second time (a fresh ``manage.py deliver_webhooks`` was
45 MiB of the server's proportional set size, more than a worker). The keeper
has a single thread too, so each of its forks is as safe as the first.
"""

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback

from crow import env

RESTART_MAX = 30.0  # seconds between restarts of a worker that keeps dying at once
STOP_TIMEOUT = 10.0  # seconds the keeper and its worker have to stop before they are killed
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
KEEPER_NAME = b"crow-wh-keeper"  # /proc/<pid>/comm (15 bytes at most)
WORKER_NAME = b"crow-webhooks"


def enabled() -> bool:
    return env.boolean("CROW_WEBHOOK_WORKER", default=True)


def _prctl(option: int, value: int | bytes) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _become(name: bytes) -> None:
    """In a forked child: die with the parent, and carry ``name`` in ``ps``."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(_PR_SET_NAME, name)


class Supervisor:
    """The keeper process, seen from the server."""

    def __init__(self) -> None:
        self.pid: int | None = None

    def start(self) -> "Supervisor":
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _keep()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)  # never the server's atexit handlers (they delete its metric files)
        self.pid = pid
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if not _reaped(self.pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _reaped(self.pid, 1.0)
        self.pid = None


def _keep() -> None:
    """The keeper: fork the worker, again whenever it exits, until SIGTERM (or SIGINT)."""
    _become(KEEPER_NAME)
    stopping: list[bool] = []
    worker: list[int] = []

    def stop(*_: object) -> None:
        stopping.append(True)
        for pid in worker:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    wait = 1.0
    while not stopping:
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _work()
        worker[:] = [pid]
        if stopping:  # the signal came between the fork and the list: the worker did not hear it
            stop()
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        worker.clear()
        if stopping:
            return
        wait = 1.0 if time.monotonic() - started > RESTART_MAX else min(wait * 2, RESTART_MAX)
        print(f"webhook worker exited ({code}); restarting in {wait:.0f}s", file=sys.stderr, flush=True)
        deadline = time.monotonic() + wait
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)


def _work() -> None:
    """The worker: ``manage.py deliver_webhooks`` in this forked process; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until the command sets its own
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _become(WORKER_NAME)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")
        import django
        from django.core.management import call_command

        django.setup()  # done already when the server preloaded the application
        call_command("deliver_webhooks")
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _reaped(pid: int, timeout: float) -> bool:
    """Whether child ``pid`` exited (and was reaped) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
