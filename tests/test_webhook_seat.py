"""The webhook delivery's seat (``crow.webhooks.Seat``): one process at a time runs the loop.

The lock is the kernel's (``fcntl.lockf``, held by a process), so the other
holder here is a real process; the loop is a stand-in that records its runs.
"""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crow import webhooks

HOLD = (  # another process that holds the lock until killed
    "import fcntl, sys, time; f = open(sys.argv[1], 'r+b'); fcntl.lockf(f, fcntl.LOCK_EX);"
    " print(1, flush=True); time.sleep(60)"
)


class Loop:
    """A stand-in for the delivery loop: counts its runs, raises in the first ``failures``."""

    def __init__(self, failures: int = 0) -> None:
        self.runs = 0
        self.failures = failures
        self.ran = threading.Event()

    def __call__(self, stopping) -> None:
        self.runs += 1
        self.ran.set()
        if self.runs <= self.failures:
            raise RuntimeError("a bug in the loop")
        while not stopping():
            time.sleep(0.01)


@pytest.fixture
def lock_file(tmp_path: Path) -> str:
    path = tmp_path / "webhooks.lock"
    path.touch()
    return str(path)


def test_the_seat_waits_while_another_process_delivers_and_takes_over_when_it_dies(
    lock_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "TAKEOVER", 0.1)
    other = subprocess.Popen([sys.executable, "-c", HOLD, lock_file], stdout=subprocess.PIPE)
    try:
        assert other.stdout.readline() == b"1\n"
        loop = Loop()
        seat = webhooks.Seat(lock_file, run=loop).start()
        assert not loop.ran.wait(1.0), "it ran while another process held the lock"
        other.kill()
        other.wait(10)
        assert loop.ran.wait(5.0), "it did not take over from a process that died"
        seat.stop()
        assert not seat._thread.is_alive() and loop.runs == 1
    finally:
        other.kill()
        other.wait(10)


def test_a_loop_that_raises_is_run_again(lock_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = Loop(failures=1)
    sleeps: list[float] = []
    seat = webhooks.Seat(lock_file, run=loop)
    real_wait = seat._stopping.wait
    pause = lambda timeout=None: sleeps.append(timeout) or real_wait(0.01)  # noqa: E731
    monkeypatch.setattr(seat._stopping, "wait", pause)
    seat.start()
    deadline = time.monotonic() + 5
    while loop.runs < 2:
        assert time.monotonic() < deadline, "the loop was not run again"
        time.sleep(0.01)
    seat.stop()
    assert loop.runs == 2 and sleeps == [1.0]  # after a pause


def test_a_server_without_the_lock_file_runs_no_seat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(webhooks.LOCK_FILE, raising=False)
    assert webhooks.seat() is None


def test_a_lock_file_removed_meanwhile_is_made_again(tmp_path: Path) -> None:
    # Something cleaned the server's temporary directory: a worker started later still delivers.
    loop = Loop()
    seat = webhooks.Seat(str(tmp_path / "removed.lock"), run=loop).start()
    try:
        assert loop.ran.wait(5.0), "a worker without the lock file never delivered"
    finally:
        seat.stop()
