"""Replicas behind a load balancer, for ``tests/test_fleet.py``: what its fixtures hand the tests.

A ``Replica`` is one server process that a test may kill or stop and ``Fleet.ensure_all_up`` starts
again (each start logs to a file of its own); ``Fleet`` holds the replicas, HAProxy in front of them,
and what they share (the robot's credentials, the bucket, the Redis key prefix).
"""

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from registry.auth.models import PULL, PUSH
from tests import haproxy
from tests.s3server import S3Server
from tests.server import started, stop

TIMEOUT = 60
HEALTHY_WITHIN = 20.0  # seconds for HAProxy to see a (re)started replica UP: rise 2, inter 2s


@dataclass
class Replica:
    name: str  # HAProxy's server name
    env: dict[str, str]
    logs: Path  # a log per start: crow-1.1.log, crow-1.2.log after a restart...
    process: subprocess.Popen | None = None
    url: str = ""
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        self.process, self.url = started(self.env, self.logs / f"{self.name}.{self.starts}.log")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until_refused(self, timeout: float = 5.0) -> None:
        """Until the replica's port refuses connections: its listening socket is closed."""
        host, port = self.env["CROW_BIND"].rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
            except ConnectionRefusedError:
                return
            assert time.monotonic() < deadline, f"{self.name} still listens {timeout}s after SIGTERM"
            time.sleep(0.02)


@dataclass
class Fleet:
    balancer: haproxy.Haproxy
    replicas: list[Replica]
    username: str
    password: str
    bucket: str
    s3: S3Server
    redis_prefix: str
    victim: tuple[str, str]  # a robot whose logins the throttling test fails

    @property
    def credentials(self) -> str:
        return f"{self.username}:{self.password}"

    def replica(self, name: str) -> Replica:
        return next(replica for replica in self.replicas if replica.name == name)

    def ensure_all_up(self) -> None:
        for replica in self.replicas:
            if not replica.running():
                if replica.process is not None:
                    stop(replica.process)
                replica.start()
        self.balancer.wait_for(
            lambda servers: all(row["status"] == "UP" for row in servers.values()),
            HEALTHY_WITHIN,
            "every replica UP",
        )

    def token(self, replica: Replica, name: str) -> str:
        """A token from ``replica``'s token service to pull and push ``name``."""
        response = requests.get(
            f"{replica.url}/token",
            params={"scope": f"repository:{name}:{PULL},{PUSH}"},
            auth=(self.username, self.password),
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text
        return response.json()["token"]
