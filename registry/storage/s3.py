"""Blobs in S3 or Cloudflare R2, written as multipart uploads cut into equal parts.

A plain boto3 client, built once per store from settings, not django-storages:
its ``Storage`` API (open, save, url) has no multipart upload that outlives a
request, no control of part sizes and no ranged streaming, which is all this
backend does.

Layout under ``prefix``::

    blobs/<upload id>                   a blob of one part or more: the upload's multipart object,
                                        completed in place
    blobs/<upload id>/<claim>           a blob under one part, copied there by the commit of <claim>
    uploads/<upload id>/tail-<n>-<claim>  bytes after the n-th part (n >= 0) that the request holding
                                        <claim> wrote, waiting for a full part

*One part size.* R2 refuses, at completion only, a multipart upload whose
non-final parts differ in size, and every store wants them to be 5 MiB or more.
So ``write`` cuts whatever chunks arrive into parts of exactly ``part_size``;
the remainder (under one part) is stored as the *tail* object and prepended on
the next write, so no process keeps upload bytes between requests and memory
per request stays about one part. ``_upload_part`` asserts the rule.

*The state is the truth.* ``state`` (saved by the caller after each request) is
``{"mpu": id or None, "parts": [{"PartNumber", "ETag"}], "tail": bytes,
"tail_key": key or None, "superseded": [tail keys of earlier saved states]}``.
A write that failed, or whose state was never saved, may have uploaded parts
beyond the listed ones (the retry uploads those numbers again, and completion
references only listed parts) and a tail of its own.

*Fenced writes.* Every object a write creates is its claim's own: a tail key
names the claim (``WriteClaim.token``) and the saved state names the tail
key, so a request that lost its claim, however late its ``PutObject`` lands,
can only write a key no saved state points at (its failed request deletes it:
``rollback``; gc's sweep takes what a killed one left). Nothing but commit
writes a blob key, and a small blob's key names the committing claim too, so
two commits can never write over each other. Multipart parts need no fence:
completion lists the ETags of the saved state, so a stale request that
uploads a part number again makes completion fail with ``InvalidPart`` (that
upload's PUT then fails, 503, until the client starts the blob over in a new
session), never corrupts the blob; and a multipart upload completes once, so
a second commit fails with ``NoSuchUpload``. Every part stays exactly
``part_size`` whoever wrote it, so the upload stays R2-legal.

*Commit copies little.* The multipart upload is created (lazily, at the first
full part) at the blob's own key, so commit uploads the tail as the last part
(a server-side ``UploadPartCopy``) and completes the upload where it is. So
blobs over 5 GiB need no multipart copy; the limit is S3's 10,000 parts per
upload, that is 10,000 x ``part_size`` (156 GiB with the default 16 MiB; raise
the part size for more). A 1 GiB push in one request costs 64 ``UploadPart``
requests and about six others (list and create the multipart upload, tail,
complete, sweep the tails). A blob under one part (most configs and layers)
is its tail, copied server-side to its blob key at commit (``CopyObject``):
a small blob pushed in one PATCH and a PUT costs three requests (put the
tail, copy it, delete it).

*Orphans.* A multipart upload created by a write whose state was never saved is
found by listing the multipart uploads at the blob key: the next write reuses
it, ``abort`` aborts it. Tails are swept by prefix at abort and after a
multipart commit; a small blob's commit deletes, by key, its tail and those of
earlier saved states (``superseded``); what an unsaved write left beside a
small blob is gc's (its storage sweep deletes what no session and no blob row
names).
"""

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import boto3
from botocore.config import Config

from registry.storage.base import (
    SOLE_WRITER,
    BlobStore,
    Download,
    Redirect,
    StorageError,
    StoredObject,
    Stream,
    WriteClaim,
)
from registry.storage.s3_errors import body_chunks, boto_errors
from registry.storage.s3_errors import storage_errors as _storage_errors

__all__ = ["S3Store", "boto_errors"]  # boto_errors: registry.backup.s3 imports it from here

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's smallest non-final part
MAX_PART_SIZE = 5 * 1024 * MiB  # S3's largest part
MAX_PARTS = 10_000  # S3's and R2's most parts per multipart upload
STREAM_CHUNK = MiB  # bytes per chunk when proxying a download
CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Patience:
    """How long a client waits for the store: to connect, for each answer, and how many tries in all."""

    connect: float
    read: float
    attempts: int


# A streamed download waits less than a write: its client retries a 503 itself, and a hung store must
# not hold a request (and its thread) for minutes. Two tries of 5 s: about 11 s, backoff included.
DOWNLOADS = Patience(connect=2.0, read=5.0, attempts=2)
# /readyz waits 2 s for all its checks, and starts no new one while one still runs: a probe that gives
# up about then (one try, 2.5 s at most) holds no check past the store's return, so readiness comes back
# with the store's next answer.
PROBES = Patience(connect=1.0, read=1.5, attempts=1)


class S3Store(BlobStore):
    backend = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str = "",
        region: str = "auto",
        access_key_id: str = "",
        secret_access_key: str = "",
        prefix: str = "",
        part_size: int = 16 * MiB,
        redirect: bool = True,
        presign_expiry: int = 300,
        public_url: str = "",
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(
                f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}, not {part_size}"
            )
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.part_size = part_size
        # Chunks of whole parts never wait in a tail object between requests.
        self.preferred_chunk_size = part_size
        self.redirect = redirect
        self.presign_expiry = presign_expiry
        self.public_url = public_url.rstrip("/")
        session = boto3.session.Session()

        def client(patience: Patience) -> Any:
            # Empty credentials fall back to boto3's own chain (environment, instance role).
            return session.client(
                "s3",
                endpoint_url=endpoint_url or None,
                region_name=region,
                aws_access_key_id=access_key_id or None,
                aws_secret_access_key=secret_access_key or None,
                config=_config(patience),
            )

        # Three clients of one session (about 0.4 MiB each beyond the first), one per patience.
        self.client = client(Patience(connect_timeout, read_timeout, max_attempts))
        self.downloads = client(DOWNLOADS)
        self.probes = client(PROBES)

    def blob_key(self, upload_id: str) -> str:
        return f"{self.prefix}blobs/{upload_id}"

    def small_blob_key(self, upload_id: str, claim: WriteClaim) -> str:
        return f"{self.blob_key(upload_id)}/{claim.token}"

    def _tail_key(self, upload_id: str, parts: int, claim: WriteClaim) -> str:
        return f"{self.prefix}uploads/{upload_id}/tail-{parts}-{claim.token}"

    def _saved_tail_key(self, upload_id: str, state: dict) -> str:
        """Where the saved state's tail is; a state saved before tails named their claim has no
        ``tail_key``: then at the blob key before the first part, else at ``tail-<parts>``."""
        if "tail_key" in state:
            return state["tail_key"]
        if not state["parts"]:
            return self.blob_key(upload_id)
        return f"{self.prefix}uploads/{upload_id}/tail-{len(state['parts'])}"

    def start_upload(self, upload_id: str) -> dict:
        return {"mpu": None, "parts": [], "tail": 0, "tail_key": None}

    def write(
        self, upload_id: str, state: dict, offset: int, data: Iterable[bytes], claim: WriteClaim = SOLE_WRITER
    ) -> dict:
        mpu, parts, tail = state["mpu"], list(state["parts"]), state["tail"]
        saved_tail_key = tail_key = self._saved_tail_key(upload_id, state) if tail else None
        if len(parts) * self.part_size + tail != offset:
            raise StorageError(
                f"upload {upload_id} holds {len(parts)} parts and {tail} bytes,"
                f" not the {offset} bytes expected"
            )
        limit = MAX_PARTS * self.part_size
        buffer = bytearray(self._read_tail(upload_id, tail_key, tail)) if tail_key else bytearray()
        for chunk in data:
            view = memoryview(chunk)
            if len(parts) * self.part_size + len(buffer) + len(view) > limit:
                raise StorageError(
                    f"blobs are limited to {MAX_PARTS} parts of {self.part_size} bytes ({limit} bytes);"
                    " a larger CROW_S3_PART_SIZE allows larger blobs"
                )
            while view:
                take = min(len(view), self.part_size - len(buffer))
                buffer += view[:take]
                view = view[take:]
                if len(buffer) == self.part_size:
                    mpu = mpu or self._multipart_upload(upload_id)
                    parts.append(self._upload_part(upload_id, mpu, len(parts) + 1, buffer, final=False))
                    buffer = bytearray()
        if not buffer:
            tail_key = None
        elif len(parts) != len(state["parts"]) or len(buffer) != tail:
            tail_key = self._tail_key(upload_id, len(parts), claim)
            with _storage_errors(f"store the tail of upload {upload_id}"):
                self.client.put_object(
                    Bucket=self.bucket, Key=tail_key, Body=buffer, ContentType=CONTENT_TYPE
                )
        superseded = list(state.get("superseded", []))
        if saved_tail_key is not None and saved_tail_key != tail_key:
            superseded.append(saved_tail_key)  # garbage once this state is saved; commit deletes it
        return {
            "mpu": mpu,
            "parts": parts,
            "tail": len(buffer),
            "tail_key": tail_key,
            "superseded": superseded,
        }

    def rollback(self, upload_id: str, offset: int, claim: WriteClaim) -> None:
        """Delete the tails ``claim`` wrote (parts beyond the saved ones wait for the next write, which
        uploads those numbers again, or for the commit or abort)."""
        suffix = f"-{claim.token}"
        self._delete_tails(upload_id, lambda key: key.endswith(suffix))

    def commit(
        self, upload_id: str, state: dict, digest: str, size: int, claim: WriteClaim = SOLE_WRITER
    ) -> str:
        mpu, parts, tail = state["mpu"], list(state["parts"]), state["tail"]
        if len(parts) * self.part_size + tail != size:
            raise StorageError(f"upload {upload_id} holds {len(parts)} parts and {tail} bytes, not {size}")
        tail_key = self._saved_tail_key(upload_id, state) if tail else None
        if not parts:
            exact = "tail_key" in state  # one PutObject per claim and part count: exactly ``tail`` bytes
            key = self._commit_small(upload_id, tail_key, tail, exact, digest, claim)
            self._delete_quietly(upload_id, [*state.get("superseded", []), *([tail_key] if tail_key else [])])
            return key
        key = self.blob_key(upload_id)
        with _storage_errors(f"store blob {digest}"):
            if tail_key:
                parts.append(self._copy_tail_as_last_part(upload_id, mpu, len(parts) + 1, tail_key, tail))
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=mpu, MultipartUpload={"Parts": parts}
            )
        try:
            self._delete_tails(upload_id)
        except StorageError as exc:
            # The blob is complete: a leftover tail is garbage for the purge, not a failed push.
            log.warning("upload %s committed but its tails remain: %s", upload_id, exc)
        return key

    def _commit_small(
        self, upload_id: str, tail_key: str | None, tail: int, exact: bool, digest: str, claim: WriteClaim
    ) -> str:
        """A blob under one part: its tail, copied server-side to a key of this commit's own."""
        key = self.small_blob_key(upload_id, claim)
        with _storage_errors(f"store blob {digest}"):
            if tail_key is None or not exact:
                data = self._read_tail(upload_id, tail_key, tail) if tail_key else b""
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=CONTENT_TYPE)
            else:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource={"Bucket": self.bucket, "Key": tail_key},
                    ContentType=CONTENT_TYPE,
                    MetadataDirective="REPLACE",
                )
        return key

    def _delete_quietly(self, upload_id: str, keys: list[str]) -> None:
        """Delete the tails a committed small blob no longer needs, by key (no listing: a small push costs
        three requests); what an unsaved write left is gc's."""
        try:
            for key in keys:
                self.delete(key)
        except StorageError as exc:
            log.warning("upload %s committed but its tails remain: %s", upload_id, exc)

    def abort(self, upload_id: str, state: dict) -> None:
        """Drop an upload that was never committed: its multipart uploads and tails. Blob keys are
        commit's only; an upload saved before tails named their claim kept its first bytes at the
        blob key, which goes too (never with an empty ``state``: gc's sweep knows only the id, and
        whether a blob row names that object is the sweep's to check)."""
        key = self.blob_key(upload_id)
        ids = set(self._open_multipart_uploads(key))
        if state.get("mpu"):
            ids.add(state["mpu"])
        for mpu in ids:
            with _storage_errors(f"abort upload {upload_id}", missing_ok=True):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=mpu)
        self._delete_tails(upload_id)
        if state and "tail_key" not in state and not state["parts"]:
            self.delete(key)

    def stored_size(self, upload_id: str, state: dict) -> int:
        """The upload's tails and the parts of its multipart uploads."""
        total = 0
        with _storage_errors(f"measure upload {upload_id}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}uploads/{upload_id}/"
            ):
                total += sum(item["Size"] for item in page.get("Contents", []))
        key = self.blob_key(upload_id)
        for mpu in self._open_multipart_uploads(key):
            with _storage_errors(f"measure upload {upload_id}", missing_ok=True):
                for page in self.client.get_paginator("list_parts").paginate(
                    Bucket=self.bucket, Key=key, UploadId=mpu
                ):
                    total += sum(part["Size"] for part in page.get("Parts", []))
        return total

    def exists(self, key: str) -> bool:
        return self._size_of(key) is not None

    def probe(self) -> None:
        with _storage_errors(f"reach bucket {self.bucket}"):
            self.probes.head_bucket(Bucket=self.bucket)

    def _size_of(self, key: str) -> int | None:
        """The size of the object at ``key``, None if there is none."""
        with _storage_errors(f"look up {key}", missing_ok=True):
            return self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        return None

    def download(self, key: str, digest: str, start: int, length: int) -> Download:
        if self.redirect:
            return Redirect(self.url(key), length)
        if length == 0:
            return Stream(iter(()), 0)
        with _storage_errors(f"read blob {digest}"):
            body = self.downloads.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )["Body"]
        return Stream(body_chunks(body, STREAM_CHUNK, f"read blob {digest}"), length)

    def url(self, key: str) -> str:
        """Where a client downloads ``key``: the public host, or a presigned GET."""
        if self.public_url:
            return f"{self.public_url}/{quote(key)}"
        with _storage_errors(f"sign a URL for {key}"):
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self.presign_expiry,
            )

    def read(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        with _storage_errors(f"read {key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        yield from body_chunks(body, chunk_size, f"read {key}")

    def delete(self, key: str) -> None:
        with _storage_errors(f"delete {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def iter_keys(self) -> Iterator[StoredObject]:
        """Blobs, tails, and multipart uploads not completed yet (leftovers of their upload too)."""
        blobs, uploads = f"{self.prefix}blobs/", f"{self.prefix}uploads/"
        with _storage_errors("list the bucket"):
            for prefix in (blobs, uploads):
                pages = self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix
                )
                for page in pages:
                    for item in page.get("Contents", []):
                        upload_id = item["Key"].removeprefix(prefix).split("/", 1)[0]
                        modified, size = item["LastModified"], item["Size"]
                        yield StoredObject(item["Key"], modified, upload_id, prefix == blobs, size)
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=blobs
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    upload_id = upload["Key"].removeprefix(blobs)
                    yield StoredObject(upload["Key"], upload["Initiated"], upload_id, False, 0)

    def _read_tail(self, upload_id: str, tail_key: str, tail: int) -> bytes:
        # Only the first ``tail`` bytes: an upload saved before tails named their claim may hold more.
        action = f"read the tail of upload {upload_id}"
        with _storage_errors(action):
            body = self.client.get_object(Bucket=self.bucket, Key=tail_key, Range=f"bytes=0-{tail - 1}")[
                "Body"
            ]
            data = body.read()
        if len(data) != tail:
            raise StorageError(f"the tail of upload {upload_id} has {len(data)} bytes, not {tail}")
        return data

    def _multipart_upload(self, upload_id: str) -> str:
        """The multipart upload at the blob key: one an unsaved write left, or a new one."""
        key = self.blob_key(upload_id)
        for mpu in self._open_multipart_uploads(key):
            return mpu
        with _storage_errors(f"start a multipart upload for {upload_id}"):
            return self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=CONTENT_TYPE)[
                "UploadId"
            ]

    def _upload_part(self, upload_id: str, mpu: str, number: int, data: bytearray, *, final: bool) -> dict:
        self._check_part(number, len(data), final=final)
        with _storage_errors(f"upload part {number} of upload {upload_id}"):
            response = self.client.upload_part(
                Bucket=self.bucket, Key=self.blob_key(upload_id), UploadId=mpu, PartNumber=number, Body=data
            )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _copy_tail_as_last_part(
        self, upload_id: str, mpu: str, number: int, tail_key: str, tail: int
    ) -> dict:
        self._check_part(number, tail, final=True)
        response = self.client.upload_part_copy(
            Bucket=self.bucket,
            Key=self.blob_key(upload_id),
            UploadId=mpu,
            PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": tail_key},
            CopySourceRange=f"bytes=0-{tail - 1}",
        )
        return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

    def _check_part(self, number: int, size: int, *, final: bool) -> None:
        # Not an ``assert``: it must hold under ``python -O`` too. R2 would only refuse at completion.
        fits = 0 < size <= self.part_size if final else size == self.part_size
        if not fits or number > MAX_PARTS:
            raise AssertionError(
                f"part {number} has {size} bytes: every non-final part must have exactly"
                f" {self.part_size} bytes, the last at most that, and there are at most {MAX_PARTS}"
            )

    def _open_multipart_uploads(self, key: str) -> list[str]:
        with _storage_errors(f"list multipart uploads at {key}"):
            uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key).get("Uploads", [])
        return [upload["UploadId"] for upload in uploads if upload["Key"] == key]

    def _delete_tails(self, upload_id: str, which: Callable[[str], bool] = lambda key: True) -> None:
        prefix = f"{self.prefix}uploads/{upload_id}/"
        with _storage_errors(f"delete the tails of upload {upload_id}"):
            listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
            # One DELETE each, not DeleteObjects: that one requires a checksum header some stores refuse.
            for item in listing.get("Contents", []):
                if which(item["Key"]):
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])


def _config(patience: Patience) -> Config:
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        # Newer botocore sends CRC checksums on every upload; some S3-compatible stores refuse them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # "standard" retries throttling (429, 503 SlowDown), timeouts and dropped connections with
        # backoff; "total_max_attempts" counts the first try ("max_attempts" would not).
        retries={"total_max_attempts": patience.attempts, "mode": "standard"},
        connect_timeout=patience.connect,
        read_timeout=patience.read,
    )
