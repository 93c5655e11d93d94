"""Push and pull one large blob through a running registry; report time and the server's peak memory.

    python bench/big_blob.py --url http://127.0.0.1:5000 --pid <gunicorn master pid> --size 1GiB

The blob is generated on the fly from a seeded generator (never held whole in
memory); the push is a streamed PATCH (chunked transfer encoding, as docker
sends it) followed by PUT ?digest=, the pull a GET whose bytes are hashed as
they arrive. Memory is the summed RSS of the server's whole process tree,
sampled every 50 ms from /proc.
"""

import argparse
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

CHUNK = 1024 * 1024
UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    text = text.lower().removesuffix("ib").removesuffix("b")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def blob_chunks(size: int, seed: int = 7) -> Iterator[bytes]:
    block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)
    sent = 0
    counter = 0
    while sent < size:
        # Vary each chunk so the blob is not one repeated block.
        piece = counter.to_bytes(8, "big") + block[8:]
        piece = piece[: min(CHUNK, size - sent)]
        counter += 1
        sent += len(piece)
        yield piece


def digest_of(size: int) -> str:
    hasher = hashlib.sha256()
    for chunk in blob_chunks(size):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def tree_rss(pid: int) -> int:
    """Summed resident memory (bytes) of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(children.get(current, []))
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(0.05)

    def stop(self) -> int:
        self.running = False
        self.join()
        return self.peak


def push(url: str, name: str, size: int, digest: str) -> float:
    started = time.perf_counter()
    response = requests.post(f"{url}/v2/{name}/blobs/uploads/", timeout=60)
    response.raise_for_status()
    location = requests.compat.urljoin(url, response.headers["Location"])
    response = requests.patch(location, data=blob_chunks(size), timeout=3600)
    response.raise_for_status()
    location = requests.compat.urljoin(url, response.headers["Location"])
    response = requests.put(location, params={"digest": digest}, timeout=3600)
    response.raise_for_status()
    return time.perf_counter() - started


def pull(url: str, name: str, digest: str) -> tuple[float, str]:
    started = time.perf_counter()
    hasher = hashlib.sha256()
    with requests.get(f"{url}/v2/{name}/blobs/{digest}", stream=True, timeout=3600) as response:
        response.raise_for_status()
        for chunk in response.iter_content(CHUNK):
            hasher.update(chunk)
    return time.perf_counter() - started, "sha256:" + hasher.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--pid", type=int, required=True, help="the server's master process id")
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--name", default="bench/big")
    args = parser.parse_args()
    size = parse_size(args.size)
    digest = digest_of(size)
    idle = tree_rss(args.pid)
    sampler = PeakSampler(args.pid)
    sampler.start()
    push_seconds = push(args.url, args.name, size, digest)
    pull_seconds, pulled = pull(args.url, args.name, digest)
    peak = sampler.stop()
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
