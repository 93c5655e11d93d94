"""What a maintenance run tells its operator: the counts, bytes, failures and time of one run, as one line.

gc, its storage sweep, the upload purge and verify count different things
but say them the same way: ``<verb> <counts>[, N failed] in 1.2s[; remark]``,
where the verb is what a dry run *would* do or what a run *did*. The line's
shape lives here once; each report names its verbs and its counts.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(count: int) -> str:
    """``10 bytes``, or ``1.5 GiB (1610612736 bytes)``: read at a glance, exact for a script."""
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in UNITS:
        value /= 1024
        if value < 1024 or unit == UNITS[-1]:
            return f"{value:.1f} {unit} ({count} bytes)"
    raise AssertionError("unreachable")


@dataclass
class Report:
    DID: ClassVar[str]  # "deleted"
    WOULD: ClassVar[str]  # what a dry run says instead: "would delete"
    FAILED: ClassVar[str] = "failed"  # after the number of failures: ", 2 failed"
    COUNTS: ClassVar[str] = ""  # what ``counts`` says, formatted with the report's fields

    bytes: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> str:
        """What the run counted, between the verb and the failures: ``3 uploads, 1.0 KiB (1024 bytes)``."""
        return self.COUNTS.format(**vars(self), size=human_size(self.bytes))

    def remark(self) -> str:
        """What follows the time, if anything: ``; why something was not done``."""
        return ""

    def summary(self, dry_run: bool = False) -> str:
        verb = self.WOULD if dry_run else self.DID
        failed = f", {len(self.failed)} {self.FAILED}" if self.failed else ""
        return f"{verb} {self.counts()}{failed} in {self.seconds:.1f}s{self.remark()}"

    def add(self, part: "Report") -> None:
        """Count ``part``'s bytes and failures as this run's (a phase that reports on its own)."""
        self.bytes += part.bytes
        self.failed += part.failed

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Set ``seconds`` to the time the block took, even if it raised."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds = time.monotonic() - started
