"""HAProxy from Debian's package as a real process, running the shipped ``deploy/haproxy.cfg``.

``render`` rewrites only what differs from compose.yaml's network: the frontend's address, the
backend's servers (loopback ports instead of Docker DNS names, so the ``resolvers`` section goes),
and a stats socket the test reads (``show stat``: which replica holds connections, which is UP).
Every other line (timeouts, retries, redispatch, balance, health checks) is the shipped one.
``running`` starts ``haproxy -db`` (foreground) in a process group of its own and stops it.
"""

import csv
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import spawn, stop

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "deploy" / "haproxy.cfg"
START_TIMEOUT = 10.0

# An `option httplog` line: ... backend/server Tq/Tw/Tc/Tr/Tt status bytes ... actconn/feconn/beconn/
# srv_conn/retries ...; retries begin with "+" when the request was redispatched to another server.
HTTPLOG = re.compile(r" crow/(?P<server>\S+) .* \d+/\d+/\d+/\d+/(?P<retries>\+?\d+) ")


def render(shipped: str, bind: str, servers: dict[str, str], stats_socket: Path) -> str:
    """The shipped configuration with the frontend at ``bind`` and ``servers`` (name: host:port)."""
    text = _substitute(r"^resolvers docker\n(?:[ \t]+.*\n)+\n?", "", shipped)
    text = _substitute(r" resolvers docker init-addr \S+", "", text)
    text = _substitute(r"^(\s*)bind :5000$", rf"\g<1>bind {bind}", text)
    text = _substitute(r"^(global\n)", rf"\g<1>    stats socket {stats_socket} mode 600 level admin\n", text)
    lines = "".join(f"    server {name} {address}\n" for name, address in servers.items())
    return _substitute(r"(?:^\s*server \S+ \S+\n)+", lines, text)


def _substitute(pattern: str, replacement: str, text: str) -> str:
    """``re.sub`` that must match: a shipped file that no longer fits fails here, not silently."""
    result, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count, f"deploy/haproxy.cfg no longer has {pattern!r}"
    return result


@dataclass(frozen=True)
class Haproxy:
    url: str  # http://127.0.0.1:PORT
    host: str  # 127.0.0.1:PORT
    log: Path
    stats_socket: Path

    def command(self, line: str) -> str:
        """One command on the stats socket (``show stat``, ``show servers state``...), its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(5)
            connection.connect(str(self.stats_socket))
            connection.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> list[dict[str, str]]:
        """``show stat``: a row per frontend, backend and server (``svname``, ``status``, ``scur``...)."""
        return list(csv.DictReader(self.command("show stat").removeprefix("# ").splitlines()))

    def servers(self) -> dict[str, dict[str, str]]:
        """The backend's servers by name: ``status`` (UP, DOWN...), ``scur`` (connections now)..."""
        return {row["svname"]: row for row in self.stats() if row["svname"] not in ("FRONTEND", "BACKEND")}

    def served_by(self, marker: str) -> list[tuple[str, str]]:
        """Who answered the requests whose log line holds ``marker``: (server, retries) per request."""
        return [
            (match["server"], match["retries"])
            for line in self.log.read_text().splitlines()
            if marker in line and (match := HTTPLOG.search(line))
        ]

    def wait_for(self, condition, timeout: float, what: str) -> dict[str, dict[str, str]]:
        """Poll ``servers()`` until ``condition(servers)`` holds; fail naming ``what`` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            servers = self.servers()
            if condition(servers):
                return servers
            if time.monotonic() > deadline:
                pytest.fail(f"HAProxy never saw {what}: {servers}", pytrace=False)
            time.sleep(0.1)


@contextmanager
def running(path: str, config: Path, port: int, log: Path) -> Iterator[Haproxy]:
    """``haproxy -db -f config`` (its frontend on ``port``) until the block ends."""
    with open(log, "wb") as output:
        process = spawn([path, "-db", "-f", str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        stats = Path(re.search(r"stats socket (\S+)", config.read_text())[1])
        balancer = Haproxy(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", log, stats)
        _wait_until_open(process, balancer)
        yield balancer
    finally:
        stop(process)


def _wait_until_open(process: subprocess.Popen, balancer: Haproxy) -> None:
    """Until the stats socket answers and says the frontend is open (no probe in the access log)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"haproxy exited with {process.returncode}:\n{balancer.log.read_text()}", pytrace=False
            )
        try:
            frontends = [row for row in balancer.stats() if row["svname"] == "FRONTEND"]
        except OSError:  # the socket is not there yet
            frontends = []
        if frontends and all(row["status"] == "OPEN" for row in frontends):
            return
        time.sleep(0.05)
    pytest.fail(f"haproxy did not start within {START_TIMEOUT}s:\n{balancer.log.read_text()}", pytrace=False)
