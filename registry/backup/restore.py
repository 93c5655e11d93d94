"""``restore(SRC)``: rebuild a registry from a backup (``registry.backup.format``).

1. Into a non-empty installation it refuses unless ``merge`` is asked for.
2. ``registry.backup.check`` verifies the whole backup (every digest, size
   and reference) and refuses a damaged or incomplete one, naming what is
   wrong, before anything changes.
3. The blobs the installation lacks are written through the configured blob
   store (its upload API: filesystem or S3 alike), hashed again on the way.
4. Every row is created in one transaction. If it fails, the blobs stored in
   step 3 are deleted again, and the database is as it was.

The whole run holds ``locks.GC``, so no gc runs meanwhile (its storage sweep
would take the blobs of step 3, whose rows are not committed yet, for
garbage); a restore refuses to start while a gc runs.

Merging adds what is missing and keeps every existing row as it is: a
repository, blob or manifest that exists is left alone; a tag that exists
keeps pointing where it points, even if the backup's points elsewhere (each
such conflict is reported); users, groups, robots and rules as
``registry.backup.accounts`` says.
"""

import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Model

from registry import locks, sparse
from registry.backup import accounts
from registry.backup.check import RestoreRefused, read_metadata, verify
from registry.backup.layout import CorruptBlob, Layout, LayoutError, verified
from registry.backup.locations import open_layout
from registry.models import (
    AbsentReference,
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    Tag,
)
from registry.progress import Phase, Progress
from registry.storage import BlobStore, StorageError, blob_store

BATCH = 500
EXIT_NOT_EMPTY = 4


class NotEmpty(RestoreRefused):
    exit_code = EXIT_NOT_EMPTY


class GcRunning(RestoreRefused):
    exit_code = locks.EX_TEMPFAIL


class RestoreError(Exception):
    """Restoring failed part way (the store or the backup became unreadable); nothing was kept."""


@dataclass
class RestoreReport:
    repositories: int = 0
    manifests: int = 0
    tags: int = 0
    blobs: int = 0  # stored now
    blobs_present: int = 0  # the installation had them already (merge)
    bytes: int = 0
    access: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.bytes / 2**20 / self.seconds if self.seconds else 0.0
        access = ", ".join(f"{n} {kind}" for kind, n in self.access.items() if n)
        present = f", {self.blobs_present} already here" if self.blobs_present else ""
        return (
            f"restored {self.repositories} repositories, {self.manifests} manifests, {self.tags} tags,"
            f" {self.blobs} blobs ({self.bytes} bytes){present}{', ' + access if access else ''},"
            f" in {self.seconds:.1f}s ({rate:.1f} MiB/s)"
        )


def restore(source: str | Layout, *, merge: bool = False, progress: Progress | None = None) -> RestoreReport:
    """Restore SRC, holding the gc lock throughout; ``GcRunning`` at once if a gc (or restore) holds it."""
    try:
        held = locks.take(locks.GC)
    except locks.Busy:
        raise GcRunning(
            "a gc is running, or another restore (either holds the gc lock); nothing changed:"
            " restore once it has ended"
        ) from None
    with held:
        return _restore(source, merge, progress)


def _restore(source: str | Layout, merge: bool, progress: Progress | None) -> RestoreReport:
    started = time.monotonic()
    progress = progress or Progress()
    try:
        layout = open_layout(source)
        metadata = read_metadata(layout)
    except LayoutError as exc:
        raise RestoreError(f"cannot read the backup: {exc}") from exc
    if not merge and (existing := existing_rows()):
        counts = ", ".join(f"{n} {kind}" for kind, n in existing.items())
        raise NotEmpty(f"the installation is not empty ({counts}); restore into an empty one, or use --merge")
    verify(layout, metadata, progress)
    report = RestoreReport()
    store = blob_store()
    stored = _store_blobs(layout, store, metadata, report, progress)
    try:
        with transaction.atomic():
            _load(layout, metadata, stored, report)
    except BaseException:
        _delete(store, stored.values())
        raise
    # A merge that ran beside pushes may find a blob recorded meanwhile: its row (and key) won.
    recorded = dict(Blob.objects.filter(digest__in=list(stored)).values_list("digest", "key"))
    _delete(store, [key for digest, key in stored.items() if recorded.get(digest) != key])
    report.seconds = time.monotonic() - started
    return report


def existing_rows() -> dict[str, int]:
    counts = {
        "repositories": Repository.objects.count(),
        "blobs": Blob.objects.count(),
        "manifests": Manifest.objects.count(),
    }
    return {kind: n for kind, n in counts.items() if n} | accounts.count_existing()


def _store_blobs(
    layout: Layout, store: BlobStore, metadata: dict[str, Any], report: RestoreReport, progress: Progress
) -> dict[str, str]:
    """Write the blobs the installation lacks; returns their new keys by digest."""
    present = set(Blob.objects.values_list("digest", flat=True))
    todo = [blob for blob in metadata["blobs"] if blob["digest"] not in present]
    report.blobs_present = len(metadata["blobs"]) - len(todo)
    stored: dict[str, str] = {}
    try:
        with progress.phase("restoring blobs (bytes)", sum(blob["size"] for blob in todo)) as phase:
            for blob in todo:
                digest, size = blob["digest"], blob["size"]
                stored[digest] = _store_blob(layout, store, digest, size, phase)
                report.blobs += 1
                report.bytes += size
                progress.note(f"blob {digest} ({size} bytes)")
    except (CorruptBlob, LayoutError, StorageError) as exc:
        _delete(store, stored.values())
        raise RestoreError(f"restoring the blobs failed, nothing was kept: {exc}") from exc
    return stored


def _store_blob(layout: Layout, store: BlobStore, digest: str, size: int, phase: Phase) -> str:
    upload_id = uuid.uuid4().hex
    state = store.start_upload(upload_id)
    try:
        chunks = verified(_counted(layout.read_blob(digest), phase), digest, size)
        state = store.write(upload_id, state, 0, chunks)
        return store.commit(upload_id, state, digest, size)
    except BaseException:
        with contextlib.suppress(StorageError, OSError):
            store.abort(upload_id, state)
        raise


def _delete(store: BlobStore, keys: Iterable[str]) -> None:
    """Best effort: what is left is an unknown object, which garbage collection sweeps."""
    for key in keys:
        with contextlib.suppress(StorageError, OSError):
            store.delete(key)


def _counted(chunks: Iterator[bytes], phase: Phase) -> Iterator[bytes]:
    for chunk in chunks:
        phase.advance(len(chunk))
        yield chunk


def _load(layout: Layout, metadata: dict[str, Any], stored: dict[str, str], report: RestoreReport) -> None:
    Blob.objects.bulk_create(
        [
            Blob(digest=b["digest"], size=b["size"], key=stored[b["digest"]], created=b["created"])
            for b in metadata["blobs"]
            if b["digest"] in stored
        ],
        batch_size=BATCH,
        ignore_conflicts=True,
    )
    blob_ids = dict(Blob.objects.values_list("digest", "id"))
    existing = set(Repository.objects.values_list("name", flat=True))
    new = [r for r in metadata["repositories"] if r["name"] not in existing]
    Repository.objects.bulk_create(
        [Repository(name=r["name"], created=r["created"]) for r in new],
        batch_size=BATCH,
        ignore_conflicts=True,
    )
    report.repositories = len(new)
    repository_ids = dict(Repository.objects.values_list("name", "id"))
    for repository in metadata["repositories"]:
        _load_repository(layout, repository, repository_ids[repository["name"]], blob_ids, report)
    report.access, notes = accounts.load(metadata)
    report.notes += notes


def _insert(rows: Iterable[Model]) -> None:
    """Insert ``rows`` (all of one model) in batches; rows that exist already are kept as they are."""
    rows = list(rows)
    if rows:
        type(rows[0]).objects.bulk_create(rows, batch_size=BATCH, ignore_conflicts=True)


def _load_repository(
    layout: Layout,
    repository: dict[str, Any],
    repository_id: int,
    blob_ids: dict[str, int],
    report: RestoreReport,
) -> None:
    _insert(RepositoryBlob(repository_id=repository_id, blob_id=blob_ids[d]) for d in repository["blobs"])
    existing = set(Manifest.objects.filter(repository_id=repository_id).values_list("digest", flat=True))
    new = [m for m in repository["manifests"] if m["digest"] not in existing]
    for start in range(0, len(new), BATCH):
        _insert(_manifest(layout, repository_id, m) for m in new[start : start + BATCH])
    report.manifests += len(new)
    ids = dict(Manifest.objects.filter(repository_id=repository_id).values_list("digest", "id"))
    _insert(ManifestBlob(manifest_id=ids[m["digest"]], blob_id=blob_ids[d]) for m in new for d in m["blobs"])
    _insert(ManifestChild(parent_id=ids[m["digest"]], child_id=ids[d]) for m in new for d in m["children"])
    _insert(
        AbsentReference(manifest_id=ids[m["digest"]], digest=a["digest"], kind=a["kind"])
        for m in new
        for a in m.get("absent", ())  # version 2
    )
    sparse.resolve_present(repository_id)  # absent children that this installation or backup has
    tags = dict(Tag.objects.filter(repository_id=repository_id).values_list("name", "manifest__digest"))
    new_tags = []
    for tag in repository["tags"]:
        current = tags.get(tag["name"])
        if current is None:
            new_tags.append(tag)
        elif current != tag["digest"]:
            report.notes.append(
                f"tag {repository['name']}:{tag['name']}: kept {current} (the backup has {tag['digest']})"
            )
    _insert(
        Tag(repository_id=repository_id, name=t["name"], manifest_id=ids[t["digest"]], updated=t["updated"])
        for t in new_tags
    )
    report.tags += len(new_tags)


def _manifest(layout: Layout, repository_id: int, entry: dict[str, Any]) -> Manifest:
    try:
        content = b"".join(verified(layout.read_blob(entry["digest"]), entry["digest"], entry["size"]))
    except (CorruptBlob, LayoutError) as exc:
        raise RestoreError(f"the backup changed while it was restored: {exc}") from exc
    return Manifest(
        repository_id=repository_id,
        digest=entry["digest"],
        media_type=entry["media_type"],
        artifact_type=entry["artifact_type"],
        size=entry["size"],
        content=content,
        subject=entry["subject"],
        annotations=entry["annotations"],
        created=entry["created"],
    )
