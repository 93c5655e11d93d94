"""Push and pull one large blob through a running registry; report time and the server's peak memory.

    .venv/bin/python -m bench.big_blob --url http://127.0.0.1:5000 --pid <server main pid> --size 1GiB

The blob is generated on the fly by ``bench.payload`` (never held whole in
memory); the push is a streamed PATCH (chunked transfer encoding, as docker
sends it) followed by PUT ?digest=, the pull a GET whose bytes are hashed as
they arrive. Memory is the summed RSS of the server's whole process tree,
sampled every 50 ms from /proc by ``bench.processes``.
"""

import argparse
import hashlib
import time

import requests

from bench.payload import PIECE, Payload
from bench.processes import PeakSampler, tree_rss

UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    text = text.lower().removesuffix("ib").removesuffix("b")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def push(url: str, name: str, payload: Payload) -> float:
    started = time.perf_counter()
    # One connection for the whole upload, as docker and skopeo keep theirs alive.
    with requests.Session() as session:
        response = session.post(f"{url}/v2/{name}/blobs/uploads/", timeout=60)
        response.raise_for_status()
        location = requests.compat.urljoin(url, response.headers["Location"])
        # A generator body: requests sends it with chunked transfer encoding, as docker does.
        response = session.patch(location, data=iter(payload), timeout=3600)
        response.raise_for_status()
        location = requests.compat.urljoin(url, response.headers["Location"])
        response = session.put(location, params={"digest": payload.digest}, timeout=3600)
        response.raise_for_status()
    return time.perf_counter() - started


def pull(url: str, name: str, digest: str) -> tuple[float, str]:
    started = time.perf_counter()
    hasher = hashlib.sha256()
    with requests.get(f"{url}/v2/{name}/blobs/{digest}", stream=True, timeout=3600) as response:
        response.raise_for_status()
        for chunk in response.iter_content(PIECE):
            hasher.update(chunk)
    return time.perf_counter() - started, "sha256:" + hasher.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--pid", type=int, required=True, help="the server's master process id")
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--name", default="bench/big")
    args = parser.parse_args()
    payload = Payload(parse_size(args.size))
    size, digest = payload.size, payload.digest
    idle = tree_rss(args.pid)
    with PeakSampler(args.pid) as sampler:
        push_seconds = push(args.url, args.name, payload)
        pull_seconds, pulled = pull(args.url, args.name, digest)
    peak = sampler.peak
    mib = size / (1 << 20)
    verdict = "ok" if pulled == digest else "MISMATCH"
    print(f"blob            {mib:.0f} MiB {digest}")
    print(f"push (streamed) {push_seconds:.2f} s  {mib / push_seconds:.0f} MiB/s")
    print(f"pull            {pull_seconds:.2f} s  {mib / pull_seconds:.0f} MiB/s  digest {verdict}")
    idle_mib, peak_mib = idle / (1 << 20), peak / (1 << 20)
    print(
        f"server memory   idle {idle_mib:.0f} MiB, peak {peak_mib:.0f} MiB, "
        f"growth {peak_mib - idle_mib:.0f} MiB"
    )
    if pulled != digest:
        raise SystemExit("the pulled bytes do not match")


if __name__ == "__main__":
    main()
