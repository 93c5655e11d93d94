"""Is this a complete, intact backup? Everything ``restore`` checks before it changes anything.

``read_metadata`` reads the metadata file (none means the backup never
finished); ``verify`` checks that every digest the metadata mentions (a repository's blobs, a
manifest's blobs and children, a tag's manifest) is in the backup, that every
grant, robot and membership names a user or group the backup has, and then
re-reads every blob and manifest in the backup, hashing it: each must have its
digest and its size. All the problems are collected and named, not just the
first.
"""

from collections.abc import Iterator
from typing import Any

from registry.backup.format import METADATA, OCI_LAYOUT, FormatError, decode
from registry.backup.layout import CorruptBlob, Layout, LayoutError, verified
from registry.progress import Phase, Progress

SHOWN_PROBLEMS = 20
EXIT_DAMAGED = 3


class RestoreRefused(Exception):
    """The backup is incomplete or damaged, or the installation is not one to restore into."""

    exit_code = EXIT_DAMAGED

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        if self.problems:
            shown = "\n  ".join(self.problems[:SHOWN_PROBLEMS])
            more = len(self.problems) - SHOWN_PROBLEMS
            message += ":\n  " + shown + (f"\n  ... and {more} more" if more > 0 else "")
        super().__init__(message)


def read_metadata(layout: Layout) -> dict[str, Any]:
    """The metadata; ``RestoreRefused`` if there is none (the backup never finished) or it is unusable.

    ``LayoutError`` if SRC cannot be read at all.
    """
    data = layout.read_file(METADATA)
    if data is None:
        raise RestoreRefused(
            f"{layout.description} is not a complete backup: it has no {METADATA}"
            " (a backup that failed or was interrupted leaves none)"
        )
    try:
        metadata = decode(data)
    except FormatError as exc:
        raise RestoreRefused(f"{layout.description} is not a backup this CRoW can restore: {exc}") from exc
    return metadata


def verify(layout: Layout, metadata: dict[str, Any], progress: Progress) -> None:
    """Check every reference, digest and size of the backup; ``RestoreRefused`` naming all that is wrong."""
    problems = _references(metadata)
    if layout.read_file(OCI_LAYOUT) is None:
        problems.append(f"{OCI_LAYOUT} is missing")
    problems += _contents(layout, _sizes(metadata), progress)
    if problems:
        raise RestoreRefused(f"{layout.description} is damaged; nothing was restored", problems)


def _sizes(metadata: dict[str, Any]) -> dict[str, int]:
    """Every digest whose bytes the backup must hold (blobs and manifests), with its size."""
    sizes = {blob["digest"]: blob["size"] for blob in metadata["blobs"]}
    for repository in metadata["repositories"]:
        sizes.update((manifest["digest"], manifest["size"]) for manifest in repository["manifests"])
    return sizes


def _references(metadata: dict[str, Any]) -> list[str]:
    problems = []
    blobs = {blob["digest"] for blob in metadata["blobs"]}
    for repository in metadata["repositories"]:
        name = repository["name"]
        manifests = {manifest["digest"] for manifest in repository["manifests"]}
        problems += [
            f"{name}: linked blob {d} is not in the backup" for d in repository["blobs"] if d not in blobs
        ]
        for manifest in repository["manifests"]:
            where = f"{name}@{manifest['digest']}"
            problems += [
                f"{where}: blob {d} is not in the backup" for d in manifest["blobs"] if d not in blobs
            ]
            problems += [
                f"{where}: child manifest {d} is not in the backup"
                for d in manifest["children"]
                if d not in manifests
            ]
        problems += [
            f"{name}:{tag['name']}: manifest {tag['digest']} is not in the backup"
            for tag in repository["tags"]
            if tag["digest"] not in manifests
        ]
    users = {user["username"] for user in metadata["users"]}
    groups = {group["name"] for group in metadata["groups"]}
    for user in metadata["users"]:
        problems += [
            f"user {user['username']}: group {g} is not in the backup"
            for g in user["groups"]
            if g not in groups
        ]
    for grant in metadata["grants"]:
        if grant.get("user") and grant["user"] not in users:
            problems.append(f"grant on {grant['pattern']}: user {grant['user']} is not in the backup")
        if grant.get("group") and grant["group"] not in groups:
            problems.append(f"grant on {grant['pattern']}: group {grant['group']} is not in the backup")
    for robot in metadata["robots"]:
        if robot["owner"] not in users:
            problems.append(f"robot {robot['name']}: owner {robot['owner']} is not in the backup")
    return problems


def _contents(layout: Layout, sizes: dict[str, int], progress: Progress) -> list[str]:
    problems = []
    with progress.phase("verifying the backup (bytes)", sum(sizes.values())) as phase:
        for digest, size in sorted(sizes.items()):
            try:
                if layout.blob_size(digest) is None:
                    problems.append(f"blob {digest} is missing")
                    phase.advance(size)
                    continue
                for _ in verified(_counted(layout.read_blob(digest), phase), digest, size):
                    pass
            except CorruptBlob as exc:
                problems.append(str(exc))
            except LayoutError as exc:
                problems.append(f"blob {digest} cannot be read: {exc}")
            else:
                progress.note(f"verified {digest} ({size} bytes)")
    return problems


def _counted(chunks: Iterator[bytes], phase: Phase) -> Iterator[bytes]:
    for chunk in chunks:
        phase.advance(len(chunk))
        yield chunk
