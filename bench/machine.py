"""The machine the benchmark ran on: what it is, its ceilings, and how busy it was.

The ceilings say how fast a registry could possibly move bytes here: writing
to the work directory's disk, TCP over loopback, and SHA-256 in this Python
(OpenSSL). Noise is the load average and the CPU time stolen by the host.
"""

import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.servers import free_port

MiB, GiB = 1 << 20, 1 << 30
TICK = os.sysconf("SC_CLK_TCK")


def describe() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
    return f"{os.cpu_count()} × {model}, {memory:.0f} GiB, Linux {platform.release()}"


def disk_write(work: Path, size: int = GiB) -> float:
    """MiB/s of ``dd`` writing ``size`` bytes into the work directory and syncing them."""
    target = work / "ceiling.dd"
    command = ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size // MiB}", "conv=fdatasync"]
    try:
        started = time.perf_counter()
        subprocess.run([*command, "status=none"], check=True, timeout=600)
        return size / MiB / (time.perf_counter() - started)
    finally:
        target.unlink(missing_ok=True)


def loopback(seconds: int = 3) -> float:
    """MiB/s of one iperf3 TCP stream over 127.0.0.1."""
    port = str(free_port())
    server = subprocess.Popen(
        ["iperf3", "--server", "--one-off", "--bind", "127.0.0.1", "--port", port],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = ["iperf3", "--client", "127.0.0.1", "--port", port, "--time", str(seconds), "--json"]
        for _ in range(50):  # the server needs a moment to listen
            result = subprocess.run(client, capture_output=True, text=True, timeout=seconds + 30)
            received = json.loads(result.stdout or "{}").get("end", {}).get("sum_received")
            if result.returncode == 0 and received:
                return received["bits_per_second"] / 8 / MiB
            time.sleep(0.1)
        raise RuntimeError(f"iperf3 failed: {result.stdout[-300:]}{result.stderr[-300:]}")
    finally:
        server.kill()
        server.wait()


def sha256(total: int = GiB) -> float:
    """MiB/s of hashlib's SHA-256 over ``total`` bytes already in memory."""
    block = os.urandom(16 * MiB)
    hasher = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(total // len(block)):
        hasher.update(block)
    return total / MiB / (time.perf_counter() - started)


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU counters (seconds, all cores together) and load at one moment."""

    total: float
    busy: float
    steal: float
    load: tuple[float, float, float]

    @classmethod
    def now(cls) -> "CpuTimes":
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        # user nice system idle iowait irq softirq steal (guest time is already in user)
        ticks = [int(value) / TICK for value in first[:8]] + [0.0] * (8 - len(first[:8]))
        idle = ticks[3] + ticks[4]
        return cls(total=sum(ticks), busy=sum(ticks) - idle, steal=ticks[7], load=os.getloadavg())

    def steal_since(self, start: "CpuTimes") -> float:
        """Percent of CPU time the hypervisor took from us since ``start``."""
        elapsed = self.total - start.total
        return 100 * (self.steal - start.steal) / elapsed if elapsed else 0.0

    def others_since(self, start: "CpuTimes", ours: float) -> float:
        """Percent of the machine's CPU that processes other than ``ours`` (seconds) used since ``start``."""
        elapsed = self.total - start.total
        return 100 * max(0.0, self.busy - start.busy - ours) / elapsed if elapsed else 0.0
