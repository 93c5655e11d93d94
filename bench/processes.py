"""A server's memory (resident and proportional) and CPU time, read from /proc for its whole process tree.

RSS counts every page a process maps, so the pages a server's workers share
(the code and data they inherited from one parent) count once per worker; PSS
divides each shared page among the processes that map it, so the PSS of a
whole tree is what the tree costs the machine.
"""

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Process:
    parent: int
    rss: int  # bytes
    cpu: float  # user and system seconds


def table() -> dict[int, Process]:
    processes = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        # Fields after the command: state ppid ... utime(11) stime(12) ... rss(21).
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        processes[int(entry.name)] = Process(parent=int(fields[1]), rss=int(fields[21]) * PAGE, cpu=cpu)
    return processes


def descendants(pid: int, processes: dict[int, Process] | None = None) -> list[int]:
    """``pid`` and every live process below it."""
    processes = table() if processes is None else processes
    children: dict[int, list[int]] = {}
    for child, process in processes.items():
        children.setdefault(process.parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss(pid: int) -> int:
    """Summed resident memory (bytes) of ``pid`` and all its descendants."""
    processes = table()
    return sum(processes[p].rss for p in descendants(pid, processes) if p in processes)


@dataclass(frozen=True)
class Memory:
    pss: int  # bytes: proportional set size, shared pages divided among their users
    rss: int  # bytes: resident set size, shared pages counted in full by each process


def tree_memory(pid: int) -> Memory:
    """PSS and RSS summed over ``pid`` and all its descendants (``/proc/<pid>/smaps_rollup``).

    Reading another user's ``smaps_rollup`` needs root (or the same user).
    """
    pss = rss = 0
    for process in descendants(pid):
        try:
            rollup = Path(f"/proc/{process}/smaps_rollup").read_text()
        except OSError:
            continue  # the process ended while we looked
        fields = dict(line.split(":", 1) for line in rollup.splitlines()[1:] if ":" in line)
        pss += int(fields["Pss"].split()[0]) * 1024
        rss += int(fields["Rss"].split()[0]) * 1024
    return Memory(pss=pss, rss=rss)


def cpu_times(roots: Iterable[int]) -> dict[int, float]:
    """CPU seconds so far of every process in the trees under ``roots``, by process id."""
    processes = table()
    return {p: processes[p].cpu for root in roots for p in descendants(root, processes) if p in processes}


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two ``cpu_times`` (a process that started in between counts from zero)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


class PeakSampler(threading.Thread):
    """Samples ``tree_rss(pid)`` every ``interval`` seconds while in its ``with`` block; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stopped.wait(self.interval)

    def __enter__(self) -> "PeakSampler":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self.join()
        self.peak = max(self.peak, tree_rss(self.pid))
