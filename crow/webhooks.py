"""The webhook delivery worker as a child of ``python -m crow.serve``, so ``make run`` needs no other command.

The server forks a keeper process beside granian's workers unless
``CROW_WEBHOOK_WORKER=0`` (a fleet runs ``manage.py deliver_webhooks`` apart,
once or a few times). The keeper forks the worker (``crow-webhooks`` in
``ps``; ``deliver_webhooks``' loop), forks it again when it exits (a crash,
``kill -9``), waiting a little longer each time it dies young, and stops it
when the server stops. Both ask the kernel for SIGTERM when their parent dies,
so a server killed with ``kill -9`` leaves no worker behind. A keeper killed
itself leaves the server a thread that runs the worker as a fresh ``manage.py
deliver_webhooks`` from then on (``Supervisor``).

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
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from crow import env

COMMAND = [sys.executable, str(Path(__file__).resolve().parent.parent / "manage.py"), "deliver_webhooks"]

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


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _become(name: bytes) -> None:
    """In a forked child: die with the parent, and carry ``name`` in ``ps``."""
    _die_with_parent()
    _prctl(_PR_SET_NAME, name)


class Supervisor:
    """The keeper process, seen from the server, and a thread that waits for it.

    Should the keeper itself die (only a signal meant for it kills it), the thread runs the worker as
    a fresh ``manage.py deliver_webhooks`` from then on, restarted as the keeper would: a fork from
    the server, which has granian's threads by then, could inherit a lock one of them held.
    """

    def __init__(self, command: list[str] = COMMAND) -> None:
        self.command = command
        self.pid: int | None = None  # the keeper's
        self.fresh: subprocess.Popen | None = None  # the worker started anew, once the keeper died
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="webhook-keeper", daemon=True)

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
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self._stopping.set()
        for signalled in (signal.SIGTERM, signal.SIGKILL):
            if self.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signalled)
            fresh = self.fresh
            if fresh is not None and fresh.poll() is None:
                fresh.send_signal(signalled)
            self._thread.join(timeout if signalled == signal.SIGTERM else 1.0)
            if not self._thread.is_alive():
                return

    def _watch(self) -> None:
        """Reap the keeper; if it died while the server runs, keep a fresh worker instead."""
        assert self.pid is not None
        try:
            code: int | str = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        except ChildProcessError:  # reaped by someone else
            code = "?"
        self.pid = None
        if self._stopping.is_set():
            return
        print(f"webhook worker keeper exited ({code}); starting the worker anew", file=sys.stderr, flush=True)
        wait = 1.0
        while not self._stopping.is_set():
            started = time.monotonic()
            self.fresh = subprocess.Popen(self.command, preexec_fn=_die_with_parent)
            code = self.fresh.wait()
            if self._stopping.is_set():
                return
            wait = 1.0 if time.monotonic() - started > RESTART_MAX else min(wait * 2, RESTART_MAX)
            print(f"webhook worker exited ({code}); restarting in {wait:.0f}s", file=sys.stderr, flush=True)
            self._stopping.wait(wait)


def _keep() -> None:
    """The keeper: fork the worker, again whenever it exits, until SIGTERM."""
    _become(KEEPER_NAME)
    # A group of its own: a terminal's Ctrl-C stops the server, whose exit stops these two; it
    # reaching them first would only restart the worker while the server shuts down.
    os.setpgid(0, 0)
    stopping: list[bool] = []
    worker: list[int] = []

    def stop(*_: object) -> None:
        stopping.append(True)
        for pid in worker:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
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
