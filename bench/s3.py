"""CRoW on S3 (moto's server): storage requests per push, and pulls that bypass the app.

    .venv/bin/python -m bench.s3     # a few minutes; also the last part of `python -m bench`

moto's S3 server runs as a subprocess; werkzeug logs one line per request it
serves (method, path and query, status), which is how storage requests are
counted. CRoW runs as in production (``bench.servers.crow``) on S3, on its own
database (``crow_bench_s3``), with its access log (method, path, status;
no byte counts: a blob GET answered 200 or 206 is one whose bytes went through
CRoW). Each image of ``bench.layouts`` is pushed with skopeo to a new
repository, then pulled; the log lines each wrote during the copy are its counts.
"""

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import moto

from bench import cli, layouts, measure, report, servers
from bench.layouts import Image, MiB
from bench.measure import Failed
from bench.servers import Server

DATABASE = "crow_bench_s3"
BUCKET = "crow-bench"
REGION = "us-east-1"  # moto refuses to create buckets elsewhere without a LocationConstraint
CREDENTIALS = {"CROW_S3_ACCESS_KEY_ID": "testing", "CROW_S3_SECRET_ACCESS_KEY": "testing"}
# registry/storage/s3.py's most requests per blob beyond its parts: a multipart blob lists and
# creates its multipart upload, stores its tail, completes, lists and deletes the tails (six);
# a blob under one part is stored where it lands and checked with a HEAD at commit (two).
PER_BLOB_BUDGET = 6
PART_SIZE = 16 * MiB  # CRoW's default CROW_S3_PART_SIZE
SETTLE_SECONDS = 0.3  # a log unchanged for this long has every line of the copy before it

ANSI = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours its lines even into a file
MOTO_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+"')
# CRoW's access log line (crow.recording, plain): ... crow.access client "METHOD path" status in out seconds
CROW_LINE = re.compile(r'crow\.access \S+ "(?P<method>[A-Z]+) (?P<path>/\S*)" (?P<status>\d{3}) ')
BLOB_PATH = re.compile(r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$")
UPLOAD_PATH = re.compile(r"^/v2/.+/blobs/uploads/")
PART, PART_COPY = "UploadPart", "UploadPartCopy"


@dataclass(frozen=True)
class StorageRequest:
    method: str
    key: str  # "" for a request on the bucket itself
    query: dict[str, list[str]]

    @property
    def kind(self) -> str:
        """The S3 operation, as far as the method, key and query tell it (a part copy looks like a part)."""
        query, method = self.query, self.method
        if not self.key:
            if "uploads" in query:
                return "ListMultipartUploads"
            return "ListObjectsV2" if "list-type" in query else f"{method} bucket"
        if "partNumber" in query and "uploadId" in query and method == "PUT":
            return PART
        if "uploads" in query and method == "POST":
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload"}.get(method, method)
        objects = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}
        return objects.get(method, f"{method} object")


@dataclass(frozen=True)
class AppRequest:
    method: str
    path: str
    status: int


@dataclass
class Row:
    image: str
    push_seconds: float = 0.0
    storage: Counter[str] = field(default_factory=Counter)  # push requests by kind
    blobs: int = 0  # uploads CRoW finished with 201 during the push
    pull_seconds: float = 0.0
    blob_gets: int = 0  # blob GETs CRoW answered during the pull
    redirected: int = 0  # of which 307
    through_app: int = 0  # of which answered with the bytes by CRoW itself (200, 206)
    object_gets: int = 0  # GETs of objects moto served during the pull
    failure: str = ""

    @property
    def requests(self) -> int:
        return sum(self.storage.values())

    @property
    def parts(self) -> int:
        return self.storage[PART] + self.storage[PART_COPY]

    @property
    def beyond_parts(self) -> int:
        return self.requests - self.parts

    @property
    def per_blob(self) -> float:
        return self.beyond_parts / self.blobs if self.blobs else 0.0


class LogTail:
    """The lines a log gains between two calls of ``new_lines``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.new_lines()

    def new_lines(self) -> list[str]:
        _settle(self.path)
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return complete.decode(errors="replace").splitlines()


def _settle(path: Path) -> None:
    """Wait until ``path`` stops growing: servers log a request after answering it."""
    deadline = time.monotonic() + 10
    size = path.stat().st_size
    while time.monotonic() < deadline:
        time.sleep(SETTLE_SECONDS)
        size, before = path.stat().st_size, size
        if size == before:
            return


def storage_requests(lines: list[str]) -> list[StorageRequest]:
    found = []
    for line in lines:
        match = MOTO_LINE.search(ANSI.sub("", line))
        if match is None:
            continue
        target = urlsplit(match["target"])
        key = target.path.lstrip("/").partition("/")[2]
        query = parse_qs(target.query, keep_blank_values=True)
        found.append(StorageRequest(match["method"], key, query))
    return found


def app_requests(lines: list[str]) -> list[AppRequest]:
    found = []
    for line in lines:
        match = CROW_LINE.search(line)
        if match:
            found.append(AppRequest(match["method"], match["path"], int(match["status"])))
    return found


def kinds(requests: list[StorageRequest]) -> Counter[str]:
    """Requests by operation, telling a part copied from a tail from a part uploaded.

    The log shows no headers, so a copy is recognised by what registry/storage/s3.py
    does around it: it copies ``uploads/<id>/tail-<n>`` as part n+1 of ``blobs/<id>``
    without reading it, while an uploaded part n+1 that starts with a tail's bytes
    is preceded by a GET of that tail.
    """
    counted: Counter[str] = Counter()
    unread_tails: set[tuple[str, int]] = set()
    for request in requests:
        kind = request.kind
        tail = re.fullmatch(r"uploads/([^/]+)/tail-(\d+)", request.key)
        if tail and kind == "PutObject":
            unread_tails.add((tail[1], int(tail[2])))
        elif tail and kind == "GetObject":
            unread_tails.discard((tail[1], int(tail[2])))
        if kind == PART:
            upload_id = request.key.removeprefix("blobs/")
            if (upload_id, int(request.query["partNumber"][0]) - 1) in unread_tails:
                kind = PART_COPY
        counted[kind] += 1
    return counted


@contextmanager
def moto_server(work: Path) -> Iterator[Server]:
    """moto's S3 server on a free loopback port, in its own session, logging to ``work/moto.log``."""
    port = servers.free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work)}
    # servers._serve waits for an answer to GET /v2/ (moto answers 404: no bucket "v2") and stops
    # the whole session afterwards, as it does for the registries.
    with servers._serve("moto", command, env, f"http://127.0.0.1:{port}", work / "moto.log") as server:
        yield server


def create_bucket(endpoint_url: str) -> None:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["CROW_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["CROW_S3_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=BUCKET)


def crow_settings(endpoint_url: str, part_size: int) -> dict[str, str]:
    return {
        "CROW_STORAGE": "s3",
        "CROW_S3_BUCKET": BUCKET,
        "CROW_S3_ENDPOINT_URL": endpoint_url,
        "CROW_S3_REGION": REGION,
        **CREDENTIALS,
        "CROW_S3_PART_SIZE": str(part_size),
        "CROW_ACCESS_LOG": "1",
    }


@contextmanager
def _own_database() -> Iterator[None]:
    """CRoW on ``crow_bench_s3``, never the full benchmark's database, however this was started."""
    saved, servers.DATABASE = servers.DATABASE, DATABASE
    try:
        yield
    finally:
        servers.DATABASE = saved


def run(
    out: Path,
    postgres: str,
    images: list[Image],
    part_size: int,
    workers: int | None = None,
    threads: int | None = None,
) -> list[Row]:
    """Push then pull every image through CRoW on moto; one row of counts per image."""
    work = out / "s3"
    work.mkdir(parents=True, exist_ok=True)
    with moto_server(work) as s3, _own_database():
        create_bucket(s3.url)
        extra = crow_settings(s3.url, part_size)
        with servers.crow(work, postgres, workers, threads, extra) as crow:
            storage_log, app_log = LogTail(s3.log), LogTail(crow.log)
            return [_measure(crow, image, out, storage_log, app_log) for image in images]


def _measure(crow: Server, image: Image, out: Path, storage_log: LogTail, app_log: LogTail) -> Row:
    row = Row(image.name)
    repository = f"s3/{image.name}"
    try:
        storage_log.new_lines()
        app_log.new_lines()
        row.push_seconds = measure.push(crow, image, repository, out)
        row.storage = kinds(storage_requests(storage_log.new_lines()))
        row.blobs = _blobs_pushed(app_requests(app_log.new_lines()))
        row.pull_seconds = measure.pull(crow, image, repository, out)
        _count_pull(row, app_requests(app_log.new_lines()), storage_requests(storage_log.new_lines()))
    except Failed as exc:
        row.failure = str(exc)
    print(f"  {image.name:10} " + (f"FAILED {row.failure}" if row.failure else _summary(row)), flush=True)
    return row


def _blobs_pushed(requests: list[AppRequest]) -> int:
    return sum(
        1 for r in requests if r.method in ("PUT", "POST") and r.status == 201 and UPLOAD_PATH.match(r.path)
    )


def _count_pull(row: Row, app: list[AppRequest], storage: list[StorageRequest]) -> None:
    blob_gets = [r for r in app if r.method == "GET" and BLOB_PATH.match(r.path)]
    row.blob_gets = len(blob_gets)
    row.redirected = sum(1 for r in blob_gets if r.status == 307)
    row.through_app = sum(1 for r in blob_gets if r.status in (200, 206))
    row.object_gets = sum(1 for r in storage if r.kind == "GetObject" and r.key.startswith("blobs/"))


def _summary(row: Row) -> str:
    return (
        f"push {row.push_seconds:.1f} s, {row.requests} storage requests ({row.parts} parts, "
        f"{row.blobs} blobs); pull {row.pull_seconds:.1f} s, {row.redirected}/{row.blob_gets} redirected, "
        f"{row.through_app} answered through CRoW"
    )


# Each column of the table: its heading, and its cell for one image.
COLUMNS: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("image", lambda row: row.image),
    ("push (s)", lambda row: report.number(row.push_seconds)),
    ("storage requests", lambda row: str(row.requests)),
    ("parts", lambda row: str(row.parts)),
    ("beyond parts", lambda row: str(row.beyond_parts)),
    ("blobs", lambda row: str(row.blobs)),
    ("beyond parts/blob", lambda row: f"{row.per_blob:.2f}"),
    ("pull (s)", lambda row: report.number(row.pull_seconds)),
    ("blob GETs 307", lambda row: f"{row.redirected}/{row.blob_gets}"),
    ("blob GETs via CRoW", lambda row: str(row.through_app)),
    ("object GETs on S3", lambda row: str(row.object_gets)),
)


def table(rows: list[Row]) -> list[list[str]]:
    """Headings, then one line per image that went through."""
    cells = [[heading for heading, _ in COLUMNS]]
    cells += [[cell(row) for _, cell in COLUMNS] for row in rows if not row.failure]
    return cells


def breakdown(rows: list[Row]) -> list[str]:
    return [
        f"{row.image}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(row.storage.items()))
        for row in rows
        if not row.failure
    ]


def targets(rows: list[Row]) -> list[str]:
    done = [row for row in rows if not row.failure]
    through, gets = sum(row.through_app for row in done), sum(row.blob_gets for row in done)
    redirected = sum(row.redirected for row in done)
    pull_met = bool(done) and through == 0 and redirected == gets
    observed = max((row.per_blob for row in done), default=0.0)
    push_met = bool(done) and all(row.beyond_parts <= PER_BLOB_BUDGET * row.blobs for row in done)
    verdict = {True: "met", False: "MISSED"}
    return [
        f"{verdict[pull_met]}: a pull moves zero blob bytes through CRoW "
        f"({redirected} of {gets} blob GETs redirected, {through} answered with the bytes)",
        f"{verdict[push_met]}: a push costs at most one storage request per part plus "
        f"{PER_BLOB_BUDGET} per blob (observed at most {observed:.2f} per blob beyond the parts)",
    ]


def _notes(rows: list[Row], part_size: int) -> list[str]:
    notes = [
        f"moto {moto.__version__} S3 server; CRoW part size {part_size // MiB} MiB, presigned redirects; "
        "requests counted from moto's request log, blob bytes from CRoW's access log."
    ]
    notes += [f"Failed: {row.image}: {row.failure}" for row in rows if row.failure]
    return notes


def text(rows: list[Row], part_size: int) -> str:
    cells = table(rows)
    widths = [max(len(row[column]) for row in cells) for column in range(len(COLUMNS))]
    lines = ["  ".join(_aligned(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += ["", "Storage requests per push, by kind:", *(f"  {line}" for line in breakdown(rows))]
    lines += ["", *_notes(rows, part_size), "", "Targets:", *(f"  {line}" for line in targets(rows))]
    return "CRoW on S3 (moto)\n\n" + "\n".join(lines)


def _aligned(row: list[str], widths: list[int]) -> list[str]:
    """The image name to the left, the numbers to the right."""
    return [row[0].ljust(widths[0])] + [
        cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
    ]


def markdown(rows: list[Row], part_size: int) -> str:
    cells = table(rows)
    lines = ["## CRoW on S3 (moto)", ""]
    lines.append("| " + " | ".join(cells[0]) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    lines += ["", "Storage requests per push, by kind:", "", *(f"- {line}" for line in breakdown(rows))]
    lines += ["", *(f"{note}  " for note in _notes(rows, part_size)), "", "Targets:", ""]
    lines += [f"- {line}" for line in targets(rows)]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = _arguments()
    servers.ensure_tools()
    args.out.mkdir(parents=True, exist_ok=True)
    images = [layouts.build(args.out / "layouts", spec) for spec in layouts.SPECS]
    print("CRoW on S3 (moto): push and pull each image", flush=True)
    rows = run(args.out, args.postgres, images, args.part_size * MiB, args.workers, args.threads)
    print("\n" + text(rows, args.part_size * MiB))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.s3", description=__doc__.splitlines()[0])
    parser.add_argument("--part-size", type=int, default=PART_SIZE // MiB, help="MiB, default CRoW's 16")
    cli.server_arguments(parser)
    args = parser.parse_args()
    args.out = args.out.resolve()
    return args


if __name__ == "__main__":
    cli.run(main, "moto and CRoW stopped, database dropped")
