"""The hot reads alone: manifest GET by tag and blob HEAD, CRoW against the reference, in a minute.

    .venv/bin/python -m bench.hot_reads                          # both servers, 3 repetitions of 5 s
    .venv/bin/python -m bench.hot_reads --crow-only --set CROW_ACCESS_LOG=1

The full benchmark (``python -m bench``) takes ten minutes; this runs only its
load rows, on the same servers and clients (wrk for GET, ``ab -k -i`` for
HEAD), with CRoW on its own database (``crow_perf``) so that it can run next
to the benchmark. ``--set`` passes settings to CRoW, to compare them.
Prints requests/s and server CPU per request (database backends included),
medians of the repetitions, and CRoW/reference.
"""

import argparse
import statistics
from contextlib import ExitStack
from pathlib import Path

from bench import layouts, measure, processes, servers
from bench.measure import Failed
from bench.servers import Server

OUT = Path(__file__).resolve().parent / "out"
REPOSITORY = "perf/small"


def main() -> None:
    args = _arguments()
    servers.DATABASE = "crow_perf"  # never the full benchmark's database
    servers.ensure_tools()
    image = layouts.build(args.out / "layouts", layouts.SPECS[0])
    extra = dict(setting.split("=", 1) for setting in args.set)
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with ExitStack() as stack:
        pair = []
        if not args.crow_only:
            pair.append(stack.enter_context(servers.reference(args.out / "perf")))
        pair.append(
            stack.enter_context(
                servers.crow(args.out / "perf", args.postgres, args.workers, args.threads, extra)
            )
        )
        for server in pair:
            measure.push(server, image, REPOSITORY, args.out)
            measure.pull(server, image, REPOSITORY, args.out)
        for repetition in range(args.repetitions):
            order = pair if repetition % 2 == 0 else pair[::-1]
            for head in (False, True):
                for connections in args.connections:
                    label = f"{'blob HEAD' if head else 'manifest GET'}, {connections} conns"
                    for server in order:
                        outcome = _load(args, server, image, head, connections)
                        rows.setdefault((label, server.name), []).append(outcome)
                        print(
                            f"  {label:24} {server.name:9} {outcome[0]:8.0f} req/s {outcome[1]:6.2f} ms CPU"
                        )
    _print(rows, extra)


def _load(args: argparse.Namespace, server: Server, image: layouts.Image, head: bool, connections: int):
    if head:
        url = f"{server.url}/v2/{REPOSITORY}/blobs/{image.layer}"
    else:
        url = f"{server.url}/v2/{REPOSITORY}/manifests/{layouts.TAG}"
    measure.probe(url, head)
    before = processes.cpu_times(server.roots())
    outcome = measure.load(url, connections, args.duration, 1, head)
    spent = processes.cpu_spent(before, processes.cpu_times(server.roots()))
    if outcome.errors:
        raise Failed(f"{server.name}: {outcome.errors} errors in {outcome.requests} requests to {url}")
    return outcome.rate, 1000 * spent / max(outcome.requests, 1)


def _print(rows: dict[tuple[str, str], list[tuple[float, float]]], extra: dict) -> None:
    names = list(dict.fromkeys(name for _, name in rows))
    print(
        f"\nmedians: req/s, server CPU per request, ratio to the reference; settings: {extra or 'defaults'}"
    )
    print(f"{'figure':24} " + " ".join(f"{name:>26}" for name in names))
    for label in dict.fromkeys(label for label, _ in rows):
        medians = {
            name: [statistics.median(v) for v in zip(*rows[(label, name)], strict=True)]
            for name in names
            if (label, name) in rows
        }
        reference = medians.get("reference", [0.0])[0]
        cells = []
        for name in names:
            rate, cpu = medians.get(name, [0.0, 0.0])
            ratio = f"{rate / reference:.2f}x" if reference and name != "reference" else ""
            cells.append(f"{rate:7.0f}/s {cpu:5.2f} ms {ratio:>6}")
        print(f"{label:24} " + " ".join(f"{cell:>26}" for cell in cells))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_reads", description=__doc__.split("\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per load run")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--crow-only", action="store_true", help="skip the reference registry")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a CRoW setting")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--out", type=Path, default=OUT)
    return parser.parse_args()


if __name__ == "__main__":
    main()
