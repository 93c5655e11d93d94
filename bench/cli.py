"""What the benchmark's commands share: the server options, and stopping cleanly on a signal."""

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def server_arguments(parser: argparse.ArgumentParser) -> None:
    """CRoW's workers and threads, the PostgreSQL server, the work directory."""
    parser.add_argument("--workers", type=int, help="CROW_WORKERS (default: crow/serve.py's)")
    parser.add_argument("--threads", type=int, help="CROW_THREADS (default: crow/serve.py's)")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="no database name")
    parser.add_argument("--out", type=Path, default=OUT, help="work directory, default bench/out")


def run(main: Callable[[], None], stopped: str) -> None:
    """Run ``main`` so that Ctrl-C, SIGTERM and SIGHUP unwind it (its servers stop, its database goes)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        main()
    except KeyboardInterrupt as stop:
        sys.exit(f"interrupted ({stop}): {stopped}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
