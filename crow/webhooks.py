"""The webhook delivery worker as a child of ``python -m crow.serve``, so ``make run`` needs no other command.

The server starts ``manage.py deliver_webhooks`` beside granian's workers
unless ``CROW_WEBHOOK_WORKER=0`` (a fleet runs it apart, once or a few times).
A thread restarts it when it exits (a crash, ``kill -9``), waiting a little
longer each time it dies young, and stops it when the server stops. The child
asks the kernel for SIGTERM when its parent dies, so a server killed with
``kill -9`` leaves no worker behind.
"""

import contextlib
import ctypes
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from crow import env

COMMAND = [sys.executable, str(Path(__file__).resolve().parent.parent / "manage.py"), "deliver_webhooks"]
RESTART_MAX = 30.0  # seconds between restarts of a worker that keeps dying at once
_PR_SET_PDEATHSIG = 1


def enabled() -> bool:
    return env.boolean("CROW_WEBHOOK_WORKER", default=True)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, command: list[str] = COMMAND) -> None:
        self.command = command
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="webhook-worker", daemon=True)

    def start(self) -> "Supervisor":
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        self._thread.join(timeout)

    def _supervise(self) -> None:
        wait = 1.0
        while not self._stopping.is_set():
            started = time.monotonic()
            self.process = subprocess.Popen(self.command, preexec_fn=_die_with_parent)
            code = self.process.wait()
            if self._stopping.is_set():
                return
            wait = 1.0 if time.monotonic() - started > RESTART_MAX else min(wait * 2, RESTART_MAX)
            print(f"webhook worker exited ({code}); restarting in {wait:.0f}s", file=sys.stderr, flush=True)
            self._stopping.wait(wait)
