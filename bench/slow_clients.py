"""Issue 17's slow clients scaled up: N held connections, manifest GETs beside them, memory per connection.

    .venv/bin/python -m bench.slow_clients --connections 2000
    .venv/bin/python -m bench.slow_clients --connections 550 --probes 300 --seconds 10

Starts CRoW as ``bench.servers`` does (its own database, ``crow_bench_slow``),
pushes the ``small`` image with skopeo, then holds ``--connections`` in the
issue's proportions (``tests.slowclients``: idle, slow headers, uploads at one
byte a second, downloads at 1 KiB a second; 200:200:100:50) from one asyncio
event loop, and meanwhile times manifest GETs by tag on fresh connections.
Memory is the PSS (and, for comparison, RSS) of the server's whole process
tree (``bench.processes.tree_memory``): just started, after the push, idle
before the crowd, with the crowd held, and after the GETs. Memory per held
connection is (held - idle) / connections held open. Prints one table.

The server's default header timeout (30 s) closes the slow-header connections
half a minute after they open: the crowd is measured and probed within that.
"""

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from bench import cli, layouts, measure, servers
from bench.processes import Memory, tree_memory
from bench.servers import Server
from tests import slowclients
from tests.slowclients import Crowd, Mix, Probes

DATABASE = "crow_bench_slow"
REPOSITORY = "bench/slow"
SETTLE = 2.0  # seconds between the crowd's last connection and the memory reading
TARGET_PER_CONNECTION = 64 * 1024  # issue 17: bytes of server memory per held connection
TARGET_IDLE = 120 * 1024 * 1024  # issue 17: PSS of the default configuration, idle


@dataclass
class Readings:
    started: Memory
    pushed: Memory
    idle: Memory
    held: Memory | None = None
    after_probes: Memory | None = None
    open_when_measured: int = 0
    crowd: str = ""
    probes: Probes | None = None
    opening_seconds: float = 0.0
    command: str = ""  # how the server was started


def main() -> None:
    args = _arguments()
    limit = slowclients.raise_open_files_limit()
    if limit < args.connections + 1024:
        raise SystemExit(f"{args.connections} connections need more open files than the hard limit {limit}")
    servers.ensure_tools()
    image = layouts.build(args.out / "layouts", layouts.SPECS[0])
    work = args.out / "slow"
    with servers.crow(work, args.postgres, args.workers, args.threads, database=DATABASE) as server:
        readings = _measure(args, server, image, work)
    _print(args, readings)


def _measure(args: argparse.Namespace, server: Server, image: layouts.Image, work: Path) -> Readings:
    time.sleep(SETTLE)
    started = tree_memory(server.pid)
    measure.push(server, image, REPOSITORY, work)
    time.sleep(SETTLE)
    pushed = tree_memory(server.pid)
    registry = slowclients.prepare(server.url, REPOSITORY)
    time.sleep(SETTLE)
    readings = Readings(started=started, pushed=pushed, idle=tree_memory(server.pid))
    program, *arguments = map(str, server.process.args)
    readings.command = " ".join([Path(program).name, *arguments])
    asyncio.run(_held(args, server, registry, readings))
    return readings


async def _held(
    args: argparse.Namespace, server: Server, registry: slowclients.Registry, readings: Readings
) -> None:
    mix = Mix.scaled(args.connections)
    print(f"holding {mix}", flush=True)
    opening = time.monotonic()
    async with Crowd(registry, mix) as crowd:
        readings.opening_seconds = time.monotonic() - opening
        await asyncio.sleep(SETTLE)
        readings.held = tree_memory(server.pid)
        readings.open_when_measured = crowd.count(still_open=True)
        print(f"held: {crowd.summary()}", flush=True)
        readings.probes = await slowclients.probe_manifests(registry, args.probes, args.seconds)
        readings.after_probes = tree_memory(server.pid)
        readings.crowd = crowd.summary()


def _print(args: argparse.Namespace, readings: Readings) -> None:
    def mib(value: int) -> str:
        return f"{value / (1 << 20):7.1f} MiB"

    print(f"\nserver: {readings.command}")
    print(f"crowd: {Mix.scaled(args.connections)}, opened in {readings.opening_seconds:.1f} s")
    print(f"       at the end, {readings.crowd}")
    if readings.probes is not None:
        print(f"manifest GETs on fresh connections while held: {readings.probes.summary()}")
    print(f"\n{'server process tree':28} {'PSS':>11} {'RSS':>11}")
    rows = [
        ("just started", readings.started),
        ("after a skopeo push (small)", readings.pushed),
        ("idle, before the crowd", readings.idle),
        (f"{readings.open_when_measured} connections held", readings.held),
        ("after the manifest GETs", readings.after_probes),
    ]
    for label, memory in rows:
        if memory is not None:
            print(f"{label:28} {mib(memory.pss)} {mib(memory.rss)}")
    if readings.held is not None and readings.open_when_measured:
        held = readings.open_when_measured
        pss = (readings.held.pss - readings.idle.pss) / held
        rss = (readings.held.rss - readings.idle.rss) / held
        verdict = "met" if pss < TARGET_PER_CONNECTION else "NOT met"
        print(
            f"\nper held connection: PSS {pss / 1024:.1f} KiB, RSS {rss / 1024:.1f} KiB "
            f"(target < {TARGET_PER_CONNECTION // 1024} KiB PSS: {verdict})"
        )
    verdict = "met" if readings.idle.pss <= TARGET_IDLE else "NOT met"
    print(f"idle PSS {mib(readings.idle.pss).strip()} (target <= {TARGET_IDLE >> 20} MiB: {verdict})")
    print("(one shared machine: indicative figures only)")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=2000, help="held connections in all")
    parser.add_argument("--probes", type=int, default=500, help="manifest GETs while the crowd is held")
    parser.add_argument("--seconds", type=float, default=10.0, help="over this long")
    cli.server_arguments(parser)
    return parser.parse_args()


if __name__ == "__main__":
    cli.run(main, "the server stopped and its database dropped")
