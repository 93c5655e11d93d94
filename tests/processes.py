"""The processes tests start (the server, moto, skopeo, manage.py), each in a process group of its own.

A server is more than the process the test started: granian's main process
forks workers, and killing it alone leaves them serving (a gunicorn worker
once ran on for 14 minutes after its test). So every process starts in a new session
(``start_new_session``: its own process group, out of reach of the terminal's
Ctrl-C too), and ``stop`` signals the whole group: SIGTERM, a wait, then
SIGKILL to whatever is left. ``run`` is ``subprocess.run`` with the same
care on a timeout. At the end of the session (or of the interpreter), every
group a test started and never stopped is killed.
"""

import atexit
import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

STOP_TIMEOUT = 10.0

# The groups started and not yet stopped, by their leader's pid (which is the group's id).
_groups: dict[int, subprocess.Popen] = {}


def spawn(args: Sequence[str], **options: Any) -> subprocess.Popen:
    """``subprocess.Popen(args, **options)`` in a process group of its own, which ``stop`` ends."""
    process = subprocess.Popen(args, start_new_session=True, **options)
    _groups[process.pid] = process
    return process


def stop(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """End a test's process and everything it started: SIGTERM to its group, ``timeout``, SIGKILL.

    A process that ``spawn`` did not start has no group of its own: only it is signalled.
    """
    if _groups.pop(process.pid, None) is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return
    _signal_group(process, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    _signal_group(process, signal.SIGKILL)  # children of a stuck or dead leader
    process.wait()


def run(
    args: Sequence[str], *, timeout: float, capture_output: bool = False, **options: Any
) -> subprocess.CompletedProcess:
    """``subprocess.run`` for a test: on a timeout (or any failure), the whole group is killed."""
    if capture_output:
        options.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process = spawn(args, **options)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        stop(process, timeout=0)  # what is left of the group once the command has ended (or not)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def kill_leftovers() -> list[str]:
    """SIGKILL every group a test started and never stopped; returns what they ran."""
    left = []
    for process in list(_groups.values()):
        left.append(" ".join(map(str, process.args)))
        _groups.pop(process.pid, None)
        _signal_group(process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT)
    return left


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    # The leader's pid names the group for as long as the group has a member, or the leader is
    # not yet reaped; after that, nothing is left to signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def pytest_sessionfinish(session: pytest.Session) -> None:
    left = kill_leftovers()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"killed {len(left)} process groups that tests left running: {left}", red=True
            )


atexit.register(kill_leftovers)  # if the session never finishes (pytest itself is interrupted)
