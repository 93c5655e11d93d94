"""What the benchmark does to a registry: skopeo copies, wrk and ab load, blob uploads with requests.

Each function returns one measurement or raises ``Failed`` with the client's
exact complaint, which the report shows as the registry's symptom. Every call
is bounded: subprocesses by a timeout, load runs by their duration, HTTP by timeouts.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests

from bench.layouts import OCI_INDEX, OCI_MANIFEST, TAG, Image
from bench.payload import Payload
from bench.servers import Server

SKOPEO_TIMEOUT = 900
HTTP_TIMEOUT = 300
# root's skopeo keeps its blob-info cache here whatever the environment says.
ROOT_CACHE = Path("/var/lib/containers/cache")
MANIFEST_ACCEPT = f"Accept: {OCI_MANIFEST}, {OCI_INDEX}"


class Failed(Exception):
    """A client reported an error; the message is its symptom."""


def push(server: Server, image: Image, repository: str, work: Path) -> float:
    """Seconds to copy the image's layout to ``repository``, which must be new so that every blob uploads."""
    destination = f"docker://{server.host}/{repository}:{TAG}"
    return _skopeo(["--dest-tls-verify=false", image.source, destination], work)


def pull(server: Server, image: Image, repository: str, work: Path) -> float:
    """Seconds to copy ``repository`` into a new layout; the pulled top manifest must be the pushed one."""
    target = Path(tempfile.mkdtemp(prefix="pull-", dir=work))
    try:
        source = f"docker://{server.host}/{repository}:{TAG}"
        seconds = _skopeo(["--src-tls-verify=false", source, f"oci:{target}:{TAG}"], work)
        pulled = json.loads((target / "index.json").read_bytes())["manifests"][0]["digest"]
    finally:
        shutil.rmtree(target, ignore_errors=True)
    if pulled != image.top["digest"]:
        raise Failed(f"pulled manifest {pulled}, pushed {image.top['digest']}")
    return seconds


def _skopeo(arguments: list[str], work: Path) -> float:
    """Run ``skopeo copy --all`` with an empty blob-info cache; its wall time in seconds.

    skopeo remembers where it pushed each blob and would mount it from there
    instead of uploading it again: each copy gets a cache of its own. root's
    cache path is fixed, so a private mount namespace puts an empty one there.
    """
    cache = Path(tempfile.mkdtemp(prefix="skopeo-cache-", dir=work))
    command = ["skopeo", "--insecure-policy", "copy", "--all", "--quiet", *arguments]
    env = dict(os.environ)
    if os.geteuid() == 0:
        ROOT_CACHE.mkdir(parents=True, exist_ok=True)
        bind = 'mount --bind "$0" ' + str(ROOT_CACHE) + ' && exec "$@"'
        command = ["unshare", "--mount", "sh", "-c", bind, str(cache), *command]
    else:
        env["XDG_DATA_HOME"] = str(cache)
    try:
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=SKOPEO_TIMEOUT)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if result.returncode != 0:
        raise Failed(f"skopeo exited with {result.returncode}: {result.stderr.strip()[-600:]}")
    return seconds


@dataclass(frozen=True)
class Load:
    rate: float  # requests per second
    requests: int
    errors: int  # non-2xx/3xx answers and socket errors


def load(url: str, connections: int, seconds: float, threads: int, head: bool) -> Load:
    """Hammer ``url`` for ``seconds``: GET with the manifest Accept header, or HEAD."""
    return _ab_head(url, connections, seconds) if head else _wrk_get(url, connections, seconds, threads)


def _wrk_get(url: str, connections: int, seconds: float, threads: int) -> Load:
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
    ]
    result = subprocess.run(
        [*command, "-H", MANIFEST_ACCEPT, url], capture_output=True, text=True, timeout=seconds + 60
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    total = re.search(r"(\d+) requests in", result.stdout)
    if result.returncode != 0 or rate is None or total is None:
        raise Failed(
            f"wrk exited with {result.returncode}: {(result.stderr or result.stdout).strip()[-600:]}"
        )
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", result.stdout))
    errors += _count(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    return Load(rate=float(rate.group(1)), requests=int(total.group(1)), errors=errors)


def _ab_head(url: str, connections: int, seconds: float) -> Load:
    """ApacheBench, because wrk waits for the body a HEAD answer announces and never gets (wg/wrk#198)."""
    # -t alone caps the count at 50,000: -n after it sets a cap that the time limit reaches first.
    command = ["ab", "-i", "-k", "-r", "-q", "-s", "5", "-c", str(connections), "-t", str(seconds)]
    command += ["-n", "100000000", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    rate = re.search(r"Requests per second:\s+([\d.]+)", result.stdout)
    total = re.search(r"Complete requests:\s+(\d+)", result.stdout)
    if result.returncode != 0 or rate is None or total is None:
        raise Failed(f"ab exited with {result.returncode}: {(result.stderr or result.stdout).strip()[-600:]}")
    errors = _count(r"Failed requests:\s+(\d+)", result.stdout)
    errors += _count(r"Non-2xx responses:\s+(\d+)", result.stdout)
    return Load(rate=float(rate.group(1)), requests=int(total.group(1)), errors=errors)


def _count(pattern: str, output: str) -> int:
    found = re.search(pattern, output)
    return int(found.group(1)) if found else 0


def probe(url: str, head: bool) -> None:
    """One request as wrk will send it, so that a wrong answer is a symptom, not a fast error rate."""
    method = "HEAD" if head else "GET"
    accept = {} if head else {"Accept": MANIFEST_ACCEPT.split(": ", 1)[1]}
    response = requests.request(method, url, headers=accept, timeout=HTTP_TIMEOUT)
    if response.status_code != 200:
        raise Failed(f"{method} {url} answered {response.status_code}: {response.text[:300]}")


def upload_chunked(server: Server, repository: str, payload: Payload, chunk: int) -> float:
    """Seconds for POST, one PATCH with Content-Range per ``chunk`` bytes, then PUT ?digest=."""
    digest = payload.digest  # computed before the clock starts
    with requests.Session() as session:
        started = time.perf_counter()
        location = _start_upload(session, server, repository)
        offset = 0
        for piece in payload.chunks(chunk):
            headers = {
                "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                "Content-Type": "application/octet-stream",
            }
            response = session.patch(location, data=piece, headers=headers, timeout=HTTP_TIMEOUT)
            location = _next(response, 202, location)
            offset += len(piece)
        response = session.put(location, params={"digest": digest}, timeout=HTTP_TIMEOUT)
        _created(response, digest)
        return time.perf_counter() - started


def upload_monolithic(server: Server, repository: str, payload: Payload) -> float:
    """Seconds for POST, then one PUT ?digest= whose body streams with a Content-Length."""
    digest = payload.digest
    with requests.Session() as session:
        started = time.perf_counter()
        location = _start_upload(session, server, repository)
        headers = {"Content-Type": "application/octet-stream"}
        response = session.put(
            location, params={"digest": digest}, data=payload, headers=headers, timeout=HTTP_TIMEOUT
        )
        _created(response, digest)
        return time.perf_counter() - started


def _start_upload(session: requests.Session, server: Server, repository: str) -> str:
    url = f"{server.url}/v2/{repository}/blobs/uploads/"
    return _next(session.post(url, timeout=HTTP_TIMEOUT), 202, url)


def _next(response: requests.Response, status: int, base: str) -> str:
    if response.status_code != status or "Location" not in response.headers:
        raise Failed(_symptom(response))
    return urljoin(base, response.headers["Location"])


def _created(response: requests.Response, digest: str) -> None:
    if response.status_code != 201 or response.headers.get("Docker-Content-Digest") != digest:
        raise Failed(_symptom(response))


def _symptom(response: requests.Response) -> str:
    request = response.request
    return f"{request.method} {request.path_url} answered {response.status_code}: {response.text[:300]}"
