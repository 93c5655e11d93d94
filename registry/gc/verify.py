"""Re-read stored blobs and check each one's size and digest (``manage.py verify``).

Every blob (of one repository, or a random sample) is read back through the
blob store, as a pull would, and hashed. A blob that cannot be read is
*missing*; one whose bytes differ in length or digest is *corrupt*. A failure
whose row vanished meanwhile (garbage collection deleted the blob) is no
failure: it is counted as gone.
"""

import hashlib
from dataclasses import dataclass, field

from registry.gc.report import Report, human_size
from registry.models import Blob
from registry.progress import Progress
from registry.storage import StorageError, blob_store

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Problem:
    digest: str
    key: str
    kind: str  # "missing", "corrupt" or "unreadable" (the store failed)
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.digest} at {self.key}: {self.detail}"


@dataclass
class VerifyReport(Report):
    DID = WOULD = "verified"  # verify changes nothing: a dry run would be the same run

    blobs: int = 0
    gone: int = 0  # deleted while we checked
    problems: list[Problem] = field(default_factory=list)

    @property
    def missing(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.kind == "missing"]

    @property
    def corrupt(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.kind == "corrupt"]

    def counts(self) -> str:
        unreadable = len(self.problems) - len(self.missing) - len(self.corrupt)
        return (
            f"{self.blobs} blobs, {human_size(self.bytes)}: {len(self.missing)} missing,"
            f" {len(self.corrupt)} corrupt, {unreadable} unreadable"
        )


def verify(
    repository: str | None = None, sample: int | None = None, progress: Progress | None = None
) -> VerifyReport:
    """Check the blobs of ``repository`` (all when None), or ``sample`` of them chosen at random."""
    progress = progress or Progress()
    report = VerifyReport()
    with report.timed():
        blobs = Blob.objects.all()
        if repository is not None:
            blobs = blobs.filter(repositories__name=repository)
        blobs = blobs.order_by("?")[:sample] if sample is not None else blobs.order_by("id")
        _check_all(list(blobs.values_list("id", "digest", "size", "key")), report, progress)
    return report


def _check_all(rows: list[tuple[int, str, int, str]], report: VerifyReport, progress: Progress) -> None:
    with progress.phase("verify", len(rows)) as phase:
        for blob_id, digest, size, key in rows:
            problem = _check(digest, size, key)
            if problem is not None and not Blob.objects.filter(id=blob_id, key=key).exists():
                report.gone += 1
            else:
                report.blobs += 1
                report.bytes += size
                if problem is not None:
                    report.problems.append(problem)
                    progress.note(str(problem))
            phase.advance()


def _check(digest: str, size: int, key: str) -> Problem | None:
    algorithm, expected = digest.split(":", 1)
    try:
        hasher = hashlib.new(algorithm)
    except ValueError:
        return Problem(digest, key, "corrupt", f"unknown digest algorithm {algorithm}")
    store = blob_store()
    length = 0
    try:
        for chunk in store.read(key, READ_CHUNK):
            hasher.update(chunk)
            length += len(chunk)
    except (StorageError, OSError) as exc:
        return Problem(digest, key, _read_failure(key), str(exc) or type(exc).__name__)
    if length != size:
        return Problem(digest, key, "corrupt", f"{length} bytes stored, {size} expected")
    if hasher.hexdigest() != expected:
        return Problem(digest, key, "corrupt", f"the bytes hash to {algorithm}:{hasher.hexdigest()}")
    return None


def _read_failure(key: str) -> str:
    try:
        return "unreadable" if blob_store().exists(key) else "missing"
    except StorageError:
        return "unreadable"  # the store itself fails: it says nothing of the blob
