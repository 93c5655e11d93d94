"""A granian worker stops at its first SIGTERM or SIGINT, however many more it hears.

granian's own handler blocks, holding the GIL, at a second signal while the
worker stops: the worker hung until the server killed it after
``CROW_GRACEFUL_TIMEOUT`` (a terminal's Ctrl-C signals every process, and the
server then signals its workers again). ``crow.serve.stop_workers_once``
replaces the handler in each worker; the first test fails if granian moves
what it replaces.
"""

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from granian import _signals
from granian._granian import WorkerSignal

from tests.server import Server

pytestmark = pytest.mark.realserver

PROMPTLY = 10.0  # seconds; the server's graceful timeout below is far longer


@pytest.fixture
def server_env() -> dict[str, str]:
    # The webhook delivery: the worker that runs it takes up to a second to stop (its thread's next
    # look), a window for the second signal to land in.
    return {"CROW_GRACEFUL_TIMEOUT": "120", "CROW_WEBHOOK_WORKER": "1"}


def test_the_place_crow_serve_replaces_is_where_granian_looks() -> None:
    # mp.py imports set_loop_signals from granian._signals when a worker starts: the replacement
    # must be that attribute, and granian's WorkerSignal must still be what stops a worker.
    assert callable(_signals.set_loop_signals) and callable(_signals._get_signals)
    source = (Path(_signals.__file__).parent / "server" / "mp.py").read_text()
    assert "from granian._signals import set_loop_signals" in source
    assert hasattr(WorkerSignal(), "set")


def test_a_server_interrupted_as_a_terminal_does_stops_promptly(registry_server: Server) -> None:
    # A timing: without the replacement, 4 of 15 such stops of a `make run` server hung (a shell
    # loop, 2026-11-30), none of 6 here; with it, none of 16 there.
    _delivering(registry_server)  # started, the delivery taken
    processes = _processes(registry_server)
    (main,) = [pid for pid, parent in processes.items() if parent not in processes]
    os.killpg(main, signal.SIGINT)  # Ctrl-C: every process of the group hears it
    deadline = time.monotonic() + PROMPTLY
    while left := [pid for pid in processes if _alive(pid)]:
        assert time.monotonic() < deadline, f"still running after Ctrl-C: {left} (the server was {main})"
        time.sleep(0.1)


def _delivering(server: Server) -> int:
    """The worker whose thread delivers webhooks (``crow-webhooks``), once it has one."""
    deadline = time.monotonic() + PROMPTLY
    while True:
        for pid in _workers(server):
            tasks = Path(f"/proc/{pid}/task")
            with contextlib.suppress(OSError):
                if any((task / "comm").read_bytes().strip() == b"crow-webhooks" for task in tasks.iterdir()):
                    return pid
        assert time.monotonic() < deadline, "no worker took the webhook delivery"
        time.sleep(0.1)


def _workers(server: Server) -> list[int]:
    """The server's granian workers: its processes whose parent is one of its processes."""
    processes = _processes(server)
    return sorted(pid for pid, parent in processes.items() if parent in processes)


def _processes(server: Server) -> dict[int, int]:
    """The server's live processes (carrying its ``CROW_BIND``), each with its parent's pid."""
    bind = f"CROW_BIND={server.env['CROW_BIND']}".encode()
    found: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        try:
            if bind in (proc / "environ").read_bytes().split(b"\0") and _alive(int(proc.name)):
                status = (proc / "status").read_text()
                found[int(proc.name)] = int(
                    next(s.split()[1] for s in status.splitlines() if s.startswith("PPid:"))
                )
        except (OSError, ValueError, StopIteration):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
