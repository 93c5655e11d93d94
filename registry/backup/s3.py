"""A backup in an S3 bucket: ``s3://bucket/prefix``, the same layout as a directory, as objects.

The client is built as the S3 blob store builds its own (``registry.storage.s3``:
same endpoint, region, credentials, retries and checksum settings, from the
``CROW_S3_*`` settings; the bucket comes from the URL), so a backup can go to
another bucket of the same provider, or of AWS when no endpoint is set.

An object appears only once its upload completes, so there is no temporary
name: a small blob is one verified ``PutObject``; a larger one a multipart
upload that is completed only once the bytes hashed to their digest, and
aborted otherwise. Multipart uploads an interrupted backup left are aborted
by the next one.
"""

import contextlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from registry.backup.format import blob_path
from registry.backup.layout import CHUNK, Layout, LayoutError, verified
from registry.storage.s3 import S3Store, boto_errors

PART_SIZE = 16 * 1024 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Layout(Layout):
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.description = f"s3://{bucket}/{self.prefix}"

    @classmethod
    def from_url(cls, url: str) -> "S3Layout":
        parts = urlsplit(url)
        if not parts.netloc:
            raise LayoutError(f"{url} names no bucket: write s3://bucket/prefix")
        store = S3Store(
            bucket=parts.netloc,
            endpoint_url=settings.CROW_S3_ENDPOINT_URL,
            region=settings.CROW_S3_REGION,
            access_key_id=settings.CROW_S3_ACCESS_KEY_ID,
            secret_access_key=settings.CROW_S3_SECRET_ACCESS_KEY,
        )
        return cls(store.client, parts.netloc, parts.path)

    def prepare(self) -> None:
        with self._errors("reach the bucket"):
            self.client.head_bucket(Bucket=self.bucket)
        with self._errors("list unfinished uploads"):
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
            for upload in listing.get("Uploads", []):  # what an interrupted backup left
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )

    def blob_size(self, digest: str) -> int | None:
        with self._errors(f"look at {blob_path(digest)}", missing_ok=True):
            return self.client.head_object(Bucket=self.bucket, Key=self._key(blob_path(digest)))[
                "ContentLength"
            ]
        return None

    def write_blob(self, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        key = self._key(blob_path(digest))
        checked = verified(chunks, digest, size)
        if size <= PART_SIZE:
            data = b"".join(checked)  # raises CorruptBlob before anything is stored
            with self._errors(f"write {blob_path(digest)}"):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
            return
        with self._errors(f"start writing {blob_path(digest)}"):
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = self._upload_parts(key, upload, checked)
            with self._errors(f"write {blob_path(digest)}"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            with contextlib.suppress(BotoCoreError, ClientError):  # else the next backup aborts it
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            raise

    def _upload_parts(self, key: str, upload: str, chunks: Iterator[bytes]) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        buffer = bytearray()

        def send() -> None:
            with self._errors(f"write part {len(parts) + 1} of {key}"):
                number = len(parts) + 1
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number, Body=bytes(buffer)
                )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})
            buffer.clear()

        for chunk in chunks:
            buffer += chunk
            while len(buffer) >= PART_SIZE:
                rest = buffer[PART_SIZE:]
                del buffer[PART_SIZE:]
                send()
                buffer += rest
        if buffer:
            send()
        return parts

    def read_blob(self, digest: str) -> Iterator[bytes]:
        with self._errors(f"read {blob_path(digest)}"):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(blob_path(digest)))["Body"]
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

    def write_file(self, name: str, data: bytes) -> None:
        with self._errors(f"write {name}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)

    def read_file(self, name: str) -> bytes | None:
        with self._errors(f"read {name}", missing_ok=True):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        return None

    def blob_digests(self) -> Iterator[str]:
        prefix = self._key("blobs/")
        with self._errors("list the blobs"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    algorithm, _, hex_ = item["Key"].removeprefix(prefix).partition("/")
                    yield f"{algorithm}:{hex_}"

    def delete_blob(self, digest: str) -> None:
        with self._errors(f"delete {blob_path(digest)}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(blob_path(digest)))

    def sync(self) -> None:
        pass  # a completed upload is durable

    def close(self) -> None:
        pass

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _errors(self, action: str, *, missing_ok: bool = False) -> AbstractContextManager[None]:
        def failure(message: str, answered: bool) -> LayoutError:
            outcome = "failed" if answered else "is unreachable"
            return LayoutError(f"the destination {self.description} {outcome}: could not {action}: {message}")

        return boto_errors(failure, missing_ok=missing_ok)
