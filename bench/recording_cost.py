"""What ``crow.recording`` adds to each request, in microseconds: ``python -m bench.recording_cost``.

Runs ``recording.record`` around an ASGI application that answers at once
(the cheapest request there is: what is measured is the wrapper alone) on one
event loop, in prometheus-client's multiprocess mode as under ``crow.serve``,
with the access log off and on (written to /dev/null), against the bare
application. The end-to-end effect under load is ``bench.hot_reads``'s
(``bench/README.md`` has both).
"""

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="crow-bench-metrics-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")
    import django
    from django.conf import settings

    django.setup()
    from crow import recording

    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v2/perf/small/manifests/bench",
        "raw_path": b"/v2/perf/small/manifests/bench",
        "query_string": b"",
        "client": ("127.0.0.1", 40000),
        "headers": [(b"host", b"127.0.0.1:5000"), (b"accept", b"application/json"), (b"user-agent", b"wrk")],
    }
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    body = {"type": "http.response.body", "body": b"{}"}

    async def app(scope, receive, send) -> None:
        recording.answered(scope, "m", False, "perf/small", "bench", "anonymous")
        await send(start)
        await send(body)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    async def bare(n: int) -> None:
        for _ in range(n):
            await app(dict(scope), receive, send)

    async def recorded(n: int) -> None:
        for _ in range(n):
            await recording.record(app, dict(scope), receive, send)

    def timed(run) -> float:
        """CPU µs per request (this process's CPU time: less swayed by a busy machine than wall time)."""
        started = time.process_time()
        asyncio.run(run(args.requests))
        return (time.process_time() - started) / args.requests * 1e6

    timed(recorded)  # warm: labels bound, files mapped
    base = timed(bare)
    settings.CROW_ACCESS_LOG = False
    recording.configure()
    quiet = timed(recorded)
    settings.CROW_ACCESS_LOG = True
    recording.configure()
    logged = timed(recorded)
    print(f"{args.requests} requests, Python {sys.version.split()[0]}")
    print(f"bare application:              {base:6.2f} µs/request")
    print(f"recorded, access log off:      {quiet:6.2f} µs/request (+{quiet - base:.2f})")
    print(f"recorded, access log on:       {logged:6.2f} µs/request (+{logged - base:.2f})")


if __name__ == "__main__":
    main()
