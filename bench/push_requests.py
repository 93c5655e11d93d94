"""The requests of a blob push, one at a time on one keep-alive connection: each one's median latency.

    .venv/bin/python -m bench.push_requests --url http://127.0.0.1:5000 --rounds 150
    .venv/bin/python -m bench.push_requests --url http://127.0.0.1:5001 --rounds 150   # the reference

Each round pushes a fresh random blob as skopeo does (a HEAD that misses, POST, a chunked PATCH
sent in 32 KiB pieces, PUT with the digest) and a manifest naming it under a new tag. Run it
against CRoW and the reference registry in turn, a few times, to compare where a push's time goes
request by request (`make bench` times whole skopeo copies). Needs an open registry (no auth).
"""

import argparse
import hashlib
import http.client
import json
import os
import statistics
import time
from urllib.parse import urlsplit

PIECE = 32 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port or 80)

    def request(
        self, method: str, target: str, body=None, headers=None
    ) -> tuple[float, http.client.HTTPResponse]:
        started = time.perf_counter()
        self.connection.request(method, target, body=body, headers=headers or {})
        response = self.connection.getresponse()
        response.read()
        return time.perf_counter() - started, response


def _path(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def push_blob(client: Client, repository: str, blob: bytes, times: dict[str, list[float]] | None) -> str:
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    steps = []
    steps.append(("head", client.request("HEAD", f"/v2/{repository}/blobs/{digest}")))
    seconds, started = client.request(
        "POST", f"/v2/{repository}/blobs/uploads/", headers={"Content-Length": "0"}
    )
    steps.append(("post", (seconds, started)))
    pieces = (blob[start : start + PIECE] for start in range(0, len(blob), PIECE))
    seconds, patched = client.request(
        "PATCH",
        _path(started.getheader("Location")),
        body=pieces,
        headers={"Content-Type": "application/octet-stream"},
    )
    steps.append(("patch", (seconds, patched)))
    seconds, finished = client.request(
        "PUT", _with_digest(_path(patched.getheader("Location")), digest), headers={"Content-Length": "0"}
    )
    steps.append(("put", (seconds, finished)))
    if finished.status != 201:
        raise SystemExit(f"PUT of a blob answered {finished.status}")
    if times is not None:
        for name, (seconds, _) in steps:
            times[name].append(seconds)
    return digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--size", type=int, default=256 * 1024, help="bytes of each blob")
    args = parser.parse_args()
    client = Client(args.url)
    repository = f"bench/requests-{os.getpid()}"
    config = b"{}"
    config_digest = push_blob(client, repository, config, None)
    times: dict[str, list[float]] = {name: [] for name in ("head", "post", "patch", "put", "manifest")}
    for round_ in range(args.rounds):
        layer = os.urandom(args.size)
        digest = push_blob(client, repository, layer, times)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest, "size": len(layer)}],
        }
        seconds, answer = client.request(
            "PUT",
            f"/v2/{repository}/manifests/r{round_}",
            body=json.dumps(manifest).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        if answer.status != 201:
            raise SystemExit(f"PUT of a manifest answered {answer.status}")
        times["manifest"].append(seconds)
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(
        args.url,
        " ".join(f"{name} {value:.2f} ms" for name, value in medians.items()),
        f"(a blob and its manifest: {sum(medians.values()):.2f} ms)",
    )


if __name__ == "__main__":
    main()
