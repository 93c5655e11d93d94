"""Benchmark CRoW against the reference registry (CNCF distribution), side by side on this machine.

    .venv/bin/python -m bench            # 3 repetitions: about ten minutes
    .venv/bin/python -m bench --quick    # 1 repetition, 5 s load runs

Both servers run for the whole benchmark; every measurement is taken on one,
then the other, the order swapping each repetition (A/B, B/A, ...) so that a
drift of the machine falls on both. The table goes to the terminal and, as
Markdown, to ``bench/out/results.md``; then CRoW alone runs on S3 (moto) and
its table follows (``bench.s3``; ``--skip-s3`` skips it).
"""

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path

from bench import cli, layouts, machine, measure, processes, report, s3, servers
from bench.layouts import Image, MiB
from bench.measure import Failed
from bench.payload import Payload
from bench.report import HIGHER, LOWER, Figure, Results
from bench.servers import Server

SERVER = "granian (python -m crow.serve: ASGI, Django in threads)"


def main() -> None:
    args = _arguments()
    servers.ensure_tools()
    args.out.mkdir(parents=True, exist_ok=True)
    print("writing image layouts (once)", flush=True)
    images = [layouts.build(args.out / "layouts", spec) for spec in layouts.SPECS]
    print("measuring the machine's ceilings", flush=True)
    ceilings = {
        "disk write": machine.disk_write(args.out),
        "loopback TCP": machine.loopback(),
        "SHA-256": machine.sha256(),
    }
    results = Results()
    with ExitStack() as stack:
        reference = stack.enter_context(servers.reference(args.out / "run"))
        crow = stack.enter_context(servers.crow(args.out / "run", args.postgres, args.workers, args.threads))
        workers = len(processes.descendants(crow.pid)) - 1
        start, ours = machine.CpuTimes.now(), _our_cpu((reference, crow))
        # The bar for large transfers: 80% of the slower of the disk and SHA-256.
        ceiling = 0.8 * min(ceilings["disk write"], ceilings["SHA-256"])
        _benchmark(args, (reference, crow), images, results, ceiling)
        end, ours = machine.CpuTimes.now(), _our_cpu((reference, crow)) - ours
    notes = _notes(ceilings, start, end, ours, results)
    print("\n" + report.text(results, notes))
    header = _header(args, workers)
    output = args.out / "results.md"
    output.write_text(
        report.markdown(results, "CRoW and the reference registry, side by side", header, notes)
    )
    if not args.skip_s3:
        _s3(args, images, output)
    print(f"\nwritten to {output}")


def _s3(args: argparse.Namespace, images: list[Image], output: Path) -> None:
    """CRoW alone on S3 (moto), after both servers stopped; its table follows the side-by-side one."""
    print("\nCRoW on S3 (moto): push and pull each image", flush=True)
    rows = s3.run(args.out, args.postgres, images, s3.PART_SIZE, args.workers, args.threads)
    print("\n" + s3.text(rows, s3.PART_SIZE))
    with open(output, "a") as markdown:
        markdown.write("\n" + s3.markdown(rows, s3.PART_SIZE))


def _benchmark(
    args: argparse.Namespace,
    pair: tuple[Server, Server],
    images: list[Image],
    results: Results,
    ceiling: float,
) -> None:
    payload = Payload(args.upload_size * MiB)
    print("warming up (not measured)", flush=True)
    for server in pair:
        _warm_up(args, server, images[0])
    for repetition in range(args.repetitions):
        order = pair if repetition % 2 == 0 else pair[::-1]
        print(f"repetition {repetition + 1} of {args.repetitions}", flush=True)
        for image in images:
            # A copy of a small image takes tens of milliseconds and a large one is bound by
            # skopeo's CPU, which varies by ±15% from copy to copy: one copy per repetition left
            # a median of three at the mercy of one slow run.
            for copy in range(args.copies):
                for server in order if copy % 2 == 0 else order[::-1]:
                    repository = f"bench/{image.name}-{repetition}" + (f"-{copy}" if copy else "")
                    _transfer(args, server, image, repository, results, ceiling)
        for server in order:
            _uploads(args, server, payload, repetition, results)
        for head in (False, True):
            for connections in args.connections:
                for server in order:
                    _load(args, server, images[0], head, connections, results)


def _warm_up(args: argparse.Namespace, server: Server, image: Image) -> None:
    """Push and pull once before any clock runs.

    First-request costs (lazy imports, database connections, caches) then land
    in no measurement, on either server.
    """
    try:
        measure.push(server, image, "bench/warm-up", args.out)
        measure.pull(server, image, "bench/warm-up", args.out)
    except Failed as exc:
        print(f"  {server.name:9}  warm-up: FAILED {exc}", flush=True)


def _uploads(
    args: argparse.Namespace, server: Server, payload: Payload, repetition: int, results: Results
) -> None:
    for kind, upload in (
        ("chunked", partial(measure.upload_chunked, chunk=args.chunk)),
        ("monolithic", measure.upload_monolithic),
    ):
        figure = results.figure(f"{kind} upload {args.upload_size} MiB", "MiB/s", HIGHER)
        _record(figure, server, partial(upload, server, f"bench/{kind}-{repetition}", payload), len(payload))


def _transfer(
    args: argparse.Namespace, server: Server, image: Image, repository: str, results: Results, ceiling: float
) -> None:
    """Push then pull one image; for the large one, also the server's memory during the push."""
    pushing = partial(measure.push, server, image, repository, args.out)
    pulling = partial(measure.pull, server, image, repository, args.out)
    if image.name != "large":
        _copy(results, server, f"push {image.name}", pushing)
        _copy(results, server, f"pull {image.name}", pulling)
        return
    idle = processes.tree_rss(server.pid)
    with processes.PeakSampler(server.pid) as sampler:
        pushed = _copy(results, server, "push large", pushing, image.size, ceiling)
    if pushed:
        _add(results.figure("idle memory", "MiB", LOWER), server, idle / MiB)
        _add(results.figure("peak memory, large push", "MiB", LOWER), server, sampler.peak / MiB)
        growth = results.figure("memory growth, large push", "MiB", LOWER, goal_crow=50)
        _add(growth, server, (sampler.peak - idle) / MiB)
    _copy(results, server, "pull large", pulling, image.size, ceiling)


def _copy(
    results: Results,
    server: Server,
    label: str,
    action: Callable[[], float],
    size: int | None = None,
    ceiling: float | None = None,
) -> bool:
    """Time one push or pull; given the ``size`` it moves, also its rate and the CPU time of both ends.

    The client's CPU (skopeo and what it runs) shows how much of a large
    copy's wall time is the client's own work on a machine both ends share.
    """
    before, client_before = processes.cpu_times(server.roots()), _children_cpu()
    seconds = _record(results.figure(label, "s", LOWER, goal_ratio=1.0), server, action)
    if seconds is None:
        return False
    if size is not None:
        spent = processes.cpu_spent(before, processes.cpu_times(server.roots()))
        _add(
            results.figure(f"{label}, rate", "MiB/s", HIGHER, goal_crow=ceiling), server, size / MiB / seconds
        )
        _add(results.figure(f"{label}, server CPU", "s", LOWER), server, spent)
        _add(results.figure(f"{label}, client CPU", "s", LOWER), server, _children_cpu() - client_before)
    return True


def _children_cpu() -> float:
    """CPU seconds of this process's finished children so far (each skopeo copy is one)."""
    times = os.times()
    return times.children_user + times.children_system


def _load(
    args: argparse.Namespace, server: Server, image: Image, head: bool, connections: int, results: Results
) -> None:
    """Requests per second, and the server's CPU time per request, database included."""
    repository = f"bench/{image.name}-0"
    if head:
        url, label = f"{server.url}/v2/{repository}/blobs/{image.layer}", "blob HEAD"
    else:
        url, label = f"{server.url}/v2/{repository}/manifests/{layouts.TAG}", "manifest GET by tag"
    rate = results.figure(f"{label}, {connections} conns", "req/s", HIGHER, goal_ratio=1.5)
    cpu = results.figure(f"{label}, {connections} conns, server CPU/request", "ms", LOWER)
    try:
        measure.probe(url, head)
        before = processes.cpu_times(server.roots())
        outcome = measure.load(url, connections, args.duration, args.wrk_threads, head)
        spent = processes.cpu_spent(before, processes.cpu_times(server.roots()))
    except Failed as exc:
        _fail(rate, server, exc)
        return
    _add(rate, server, outcome.rate)
    if outcome.requests:
        _add(cpu, server, 1000 * spent / outcome.requests)
    if outcome.errors:
        _fail(rate, server, Failed(f"{outcome.errors} errors in {outcome.requests} requests"))


def _record(
    figure: Figure, server: Server, action: Callable[[], float], size: int | None = None
) -> float | None:
    """Run ``action`` and record its result; with ``size``, the result is the seconds ``size`` bytes took."""
    try:
        result = action()
    except Failed as exc:
        _fail(figure, server, exc)
        return None
    _add(figure, server, result if size is None else size / MiB / result)
    return result


def _fail(figure: Figure, server: Server, exc: Failed) -> None:
    figure.failures.setdefault(server.name, []).append(str(exc))
    print(f"  {server.name:9}  {figure.label}: FAILED {exc}", flush=True)


def _add(figure: Figure, server: Server, value: float) -> None:
    figure.values.setdefault(server.name, []).append(value)
    print(f"  {server.name:9}  {figure.label}: {report.number(value)} {figure.unit}", flush=True)


def _our_cpu(pair: tuple[Server, Server]) -> float:
    """CPU seconds so far of the benchmark, the clients it ran, and both servers (database included)."""
    itself = os.times()
    spent = itself.user + itself.system + itself.children_user + itself.children_system
    return spent + sum(sum(processes.cpu_times(server.roots()).values()) for server in pair)


def _notes(
    ceilings: dict[str, float], start: machine.CpuTimes, end: machine.CpuTimes, ours: float, results: Results
) -> list[str]:
    notes = ["Ceilings: " + ", ".join(f"{name} {value:,.0f} MiB/s" for name, value in ceilings.items()) + "."]
    noise = (
        f"Noise: other processes used {end.others_since(start, ours):.0f}% of the machine's CPU during "
        f"the run; load average {start.load[0]:.2f} before, {end.load[0]:.2f} after; "
        f"CPU steal {end.steal_since(start):.1f}%"
    )
    variations = results.variations()
    if variations:
        median = variations[len(variations) // 2][0]
        worst, where = variations[-1]
        noise += f"; coefficient of variation median {100 * median:.1f}%, worst {100 * worst:.1f}% ({where})"
    return [*notes, noise + "."]


def _header(args: argparse.Namespace, workers: int) -> list[str]:
    def version(*command: str) -> str:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        return (done.stdout or done.stderr).strip().splitlines()[0]

    threads = f"{args.threads} threads" if args.threads else "threads as configured"
    ab = re.search(r"Version ([\d.]+)", version("ab", "-V"))
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    runs = f"{args.repetitions} repetition{'s' if args.repetitions > 1 else ''}"
    runs += f" ({args.copies} copies of each image per server in each)" if args.copies > 1 else ""
    return [
        f"{today}, `{' '.join(['python -m bench', *sys.argv[1:]])}`: {runs}, median ±half the range; "
        f"load runs of {args.duration} s.  ",
        f"Machine: {machine.describe()}.  ",
        f"Reference: {version('docker-registry', '--version')}.  ",
        f"CRoW: {SERVER}, {workers} workers, {threads}; PostgreSQL; "
        f"filesystem storage; Python {platform.python_version()}.  ",
        f"Clients: {version('skopeo', '--version')}; {version('wrk', '-v').split(' [')[0]} "
        f"({args.wrk_threads} thread) for GET; ApacheBench {ab.group(1) if ab else '?'} (-k) for HEAD, "
        "which wrk cannot send; python-requests for uploads.",
    ]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition and 5 s load runs")
    parser.add_argument("--repetitions", type=int, help="default 3 (1 with --quick)")
    parser.add_argument("--duration", type=int, help="seconds per load run, default 10 (5 with --quick)")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--wrk-threads", type=int, default=1, help="one leaves the servers the most CPU")
    parser.add_argument(
        "--copies",
        type=int,
        help="pushes and pulls of each image per server and repetition, default 3 (1 with --quick)",
    )
    parser.add_argument("--upload-size", type=int, default=100, help="MiB, default 100")
    parser.add_argument("--chunk", type=int, default=5 * MiB, help="bytes per PATCH, default 5 MiB")
    cli.server_arguments(parser)
    parser.add_argument("--skip-s3", action="store_true", help="skip CRoW's run on S3 (moto, bench.s3)")
    args = parser.parse_args()
    args.repetitions = args.repetitions or (1 if args.quick else 3)
    args.copies = args.copies or (1 if args.quick else 3)
    args.duration = args.duration or (5 if args.quick else 10)
    args.out = args.out.resolve()
    return args


if __name__ == "__main__":
    cli.run(main, "servers stopped, database dropped")
