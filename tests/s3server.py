"""moto's S3 server as a real process on loopback: the stand-in for R2.

``s3_server`` starts one server per test session; ``s3_bucket`` gives each test
a fresh bucket and empties it afterwards; ``s3_store`` is an ``S3Store`` on that
bucket with the smallest part size (5 MiB) to keep tests quick; ``s3_settings``
points Django's settings at the bucket, so ``blob_store()`` is that store.
``S3Server.environment(bucket)`` gives the same configuration as environment
variables, for a real server process.
"""

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from pytest_django.fixtures import Settings

from registry.storage.s3 import MIN_PART_SIZE, S3Store
from tests.processes import spawn, stop
from tests.server import free_port

START_TIMEOUT = 30.0
REGION = "us-east-1"  # moto refuses to create buckets elsewhere without a LocationConstraint
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str  # http://127.0.0.1:PORT
    log: Path

    def client(self) -> Any:
        """A plain client for the tests' own look at the bucket."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["access_key_id"],
            aws_secret_access_key=CREDENTIALS["secret_access_key"],
        )

    def store(self, bucket: str, **options: Any) -> S3Store:
        options = {"part_size": MIN_PART_SIZE, **options}
        return S3Store(bucket=bucket, endpoint_url=self.endpoint_url, region=REGION, **CREDENTIALS, **options)

    def environment(self, bucket: str) -> dict[str, str]:
        """The variables that make a server process store blobs in ``bucket``."""
        return {
            "CROW_STORAGE": "s3",
            "CROW_S3_BUCKET": bucket,
            "CROW_S3_ENDPOINT_URL": self.endpoint_url,
            "CROW_S3_REGION": REGION,
            "CROW_S3_ACCESS_KEY_ID": CREDENTIALS["access_key_id"],
            "CROW_S3_SECRET_ACCESS_KEY": CREDENTIALS["secret_access_key"],
            "CROW_S3_PART_SIZE": str(MIN_PART_SIZE),
        }


def _wait_until_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto server exited with {process.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            requests.get(f"{url}/moto-api/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"moto server did not answer within {START_TIMEOUT}s:\n{log.read_text()}", pytrace=False)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = spawn(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_ready(process, url, log)
        yield S3Server(endpoint_url=url, log=log)
    finally:
        stop(process)


@contextmanager
def fresh_bucket(server: S3Server) -> Iterator[str]:
    """A fresh, empty bucket's name; emptied and removed when the block ends."""
    client = server.client()
    name = f"crow-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh, empty bucket; emptied and removed after the test."""
    with fresh_bucket(s3_server) as name:
        yield name


@pytest.fixture
def s3_store(s3_server: S3Server, s3_bucket: str) -> S3Store:
    return s3_server.store(s3_bucket)


@pytest.fixture
def s3_settings(settings: Settings, s3_server: S3Server, s3_bucket: str) -> Settings:
    """Django settings that make ``blob_store()`` an S3 store on the test's bucket."""
    for name, value in s3_server.environment(s3_bucket).items():
        setattr(settings, name, int(value) if name == "CROW_S3_PART_SIZE" else value)
    return settings
