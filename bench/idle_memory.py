"""CRoW's idle memory: PSS of the whole server tree, with and without preloading, and how it spreads work.

    .venv/bin/python -m bench.idle_memory            # a minute; PostgreSQL's database crow_memory

Starts CRoW as in production (``bench.servers.crow``) once with ``CROW_PRELOAD=1`` (the
application loaded in the main process and ``gc.freeze()`` before granian forks its workers) and
once with ``CROW_PRELOAD=0``; for each, the summed proportional set size (PSS: a page shared by N
processes counts 1/N in each) of the main process and its workers, idle after a few requests, and
how many of 16 keep-alive connections each worker holds. Indicative only on a shared machine.
"""

import argparse
from pathlib import Path

import requests

from bench import cli, processes, servers

MiB = 1024 * 1024
CONNECTIONS = 16


def main() -> None:
    args = _arguments()
    servers.DATABASE = "crow_memory"
    for preload in ("1", "0"):
        extra = {"CROW_PRELOAD": preload}
        with servers.crow(args.out / "memory", args.postgres, args.workers, args.threads, extra) as crow:
            sessions = [requests.Session() for _ in range(CONNECTIONS)]
            for session in sessions:
                session.get(f"{crow.url}/v2/", timeout=30).raise_for_status()
            tree = processes.descendants(crow.pid)
            held = [_established(pid, int(crow.url.rsplit(":", 1)[1])) for pid in tree[1:]]
            memory = processes.tree_memory(crow.pid)
            pss, rss = memory.pss, memory.rss
            for session in sessions:
                session.close()
        print(
            f"CROW_PRELOAD={preload}: {len(tree)} processes, PSS {pss / MiB:.0f} MiB "
            f"(RSS {rss / MiB:.0f} MiB); "
            f"{CONNECTIONS} keep-alive connections per worker: {held}",
            flush=True,
        )


def _established(pid: int, port: int) -> int:
    """Established TCP connections to ``port`` that ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_memory", description=__doc__.split("\n")[0])
    cli.server_arguments(parser)
    return parser.parse_args()


if __name__ == "__main__":
    cli.run(main, "the servers stopped")
