"""Progress of long-running commands: a tqdm bar on a terminal, plain log lines otherwise.

Libraries (``registry.gc.collect``, ``registry.gc.verify``) never print: they announce each
phase with ``progress.phase(name, total)``, advance it per item and describe
items with ``progress.note(line)``. The base class is silent, which is what
tests and other callers get by default; a command picks the kind that fits
its output with ``for_command``.
"""

import shutil
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

LOG_EVERY = 10.0  # seconds between two log lines of one phase


class Phase:
    """One phase of work: silent."""

    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "Phase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """Silent progress."""

    def phase(self, name: str, total: int | None = None) -> Phase:
        return Phase()

    def note(self, line: str) -> None:
        pass


class _BarPhase(Phase):
    def __init__(self, name: str, total: int | None, stream: TextIO) -> None:
        # The terminal's width, or 80 where it reports none (tqdm would draw nothing at 0).
        width = shutil.get_terminal_size().columns
        self.bar = tqdm(total=total, desc=name, unit="", file=stream, ncols=width, leave=True)

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class _LinePhase(Phase):
    def __init__(self, name: str, total: int | None, stream: TextIO) -> None:
        self.name, self.total, self.stream = name, total, stream
        self.done = 0
        self.logged = time.monotonic()
        self.closed = False
        self._write(f"{name}: {total} to do" if total is not None else f"{name}: started")

    def advance(self, n: int = 1) -> None:
        self.done += n
        if time.monotonic() - self.logged >= LOG_EVERY:
            self._write(f"{self.name}: {self._count()}")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._write(f"{self.name}: done, {self._count()}")

    def _count(self) -> str:
        return f"{self.done}/{self.total}" if self.total is not None else str(self.done)

    def _write(self, line: str) -> None:
        self.logged = time.monotonic()
        print(line, file=self.stream, flush=True)


class CommandProgress(Progress):
    """Phases on ``progress_stream`` (a bar on a terminal, else lines); notes on ``notes`` when wanted."""

    def __init__(self, progress_stream: TextIO | None, notes: TextIO | None, bar: bool) -> None:
        self.progress_stream, self.notes, self.bar = progress_stream, notes, bar

    def phase(self, name: str, total: int | None = None) -> Phase:
        if self.progress_stream is None:
            return Phase()
        if self.bar:
            return _BarPhase(name, total, self.progress_stream)
        return _LinePhase(name, total, self.progress_stream)

    def note(self, line: str) -> None:
        if self.notes is None:
            return
        if self.bar:
            tqdm.write(line, file=self.notes)  # above the bar, not through it
        else:
            print(line, file=self.notes, flush=True)


def for_command(command: Any, verbosity: int, notes: bool) -> CommandProgress:
    """Progress for a management command: none at verbosity 0; ``notes`` lists the items too.

    The bar or the lines go to the command's stderr, notes to its stdout, so that
    a cron job's output (stdout) holds the items and the summary only.
    """
    stderr = getattr(command.stderr, "_out", sys.stderr)
    stdout = getattr(command.stdout, "_out", sys.stdout)
    bar = stderr.isatty()
    return CommandProgress(stderr if verbosity >= 1 else None, stdout if notes else None, bar)
