"""``python -m crow.serve``: granian from the environment, its timeouts, its workers, its shutdown."""

import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from crow import serve
from tests import processes
from tests.server import ROOT, SERVE, Server, open_environment, running

TIMEOUT = 30


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CROW_") or name == "PORT":
            monkeypatch.delenv(name)
    defaults = serve.settings()
    assert (defaults.host, defaults.port, defaults.workers) == ("127.0.0.1", 5000, 2)
    assert (defaults.header_timeout, defaults.body_timeout, defaults.graceful_timeout) == (30, 30, 30)
    assert defaults.log_format == "plain" and defaults.preload
    assert defaults.max_connections == 10_000
    assert (defaults.threads, defaults.body_threads) == (8, 1000)
    monkeypatch.setenv("PORT", "8080")
    assert serve.settings().address == "127.0.0.1:8080"
    monkeypatch.setenv("CROW_BIND", "0.0.0.0:5001")
    monkeypatch.setenv("CROW_WORKERS", "3")
    monkeypatch.setenv("CROW_THREADS", "6")
    monkeypatch.setenv("CROW_HEADER_TIMEOUT", "1m")
    monkeypatch.setenv("CROW_BODY_TIMEOUT", "2m")
    monkeypatch.setenv("CROW_GRACEFUL_TIMEOUT", "5s")
    monkeypatch.setenv("CROW_LOG_FORMAT", "json")
    monkeypatch.setenv("CROW_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("CROW_MAX_CONNECTIONS", "500")
    config = serve.settings()
    assert config.max_connections == 500
    assert (config.host, config.port, config.workers, config.threads) == ("0.0.0.0", 5001, 3, 6)
    assert (config.header_timeout, config.body_timeout, config.graceful_timeout) == (60, 120, 5)
    assert config.log_format == "json"
    assert config.log_level == "warning"
    monkeypatch.setenv("CROW_BIND", "unix:/run/crow.sock")
    assert serve.settings().uds == Path("/run/crow.sock")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CROW_HEADER_TIMEOUT", "61s"),
        ("CROW_HEADER_TIMEOUT", "0"),
        ("CROW_BIND", "nowhere"),
        ("CROW_WORKERS", "0"),
        ("CROW_MAX_CONNECTIONS", "0"),
    ],
)
def test_a_setting_out_of_bounds_is_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        serve.settings()


@pytest.mark.realserver
def test_a_second_server_on_a_taken_address_refuses_to_start(tmp_path: Path, blob_root: Path) -> None:
    # Each worker binds with SO_REUSEPORT, which would let a second server share the port and take
    # half of the first one's connections; it must fail as a plain bind does.
    env = open_environment(tmp_path, blob_root, CROW_WORKERS="2")
    with running(env, tmp_path / "first.log") as url:
        second = processes.run(SERVE, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert second.returncode != 0
        assert f"cannot listen at {env['CROW_BIND']}: Address already in use" in second.stderr
        # The first server still answers every connection (none went to a second server's workers).
        for _ in range(6):
            assert requests.get(f"{url}/v2/", timeout=TIMEOUT).status_code == 200


@pytest.mark.realserver
def test_the_header_timeout_closes_idle_slow_and_kept_alive_connections(
    tmp_path: Path, blob_root: Path
) -> None:
    env = open_environment(tmp_path, blob_root, CROW_WORKERS="1", CROW_HEADER_TIMEOUT="1s")
    with running(env, tmp_path / "server.log"):
        host, port = env["CROW_BIND"].split(":")
        idle, slow, kept = (socket.create_connection((host, int(port)), timeout=TIMEOUT) for _ in range(3))
        slow.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        kept.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        # The server closes each (an empty read), well before the client's own timeout.
        assert [_until_closed(client) for client in (idle, slow, kept)] == [b"", b"", b""]
        assert time.monotonic() - started < TIMEOUT / 2


@pytest.mark.realserver
def test_keep_alive_clients_land_on_every_worker(tmp_path: Path, blob_root: Path) -> None:
    env = open_environment(tmp_path, blob_root, CROW_WORKERS="2")
    log = tmp_path / "server.log"
    with running(env, log) as url:
        workers = _workers(_main_pid(log), 2)
        sessions = [requests.Session() for _ in range(16)]
        for session in sessions:
            assert session.get(f"{url}/v2/", timeout=TIMEOUT).status_code == 200
        port = int(env["CROW_BIND"].rsplit(":", 1)[1])
        held = {worker: _connections(worker, port) for worker in workers}
        for session in sessions:
            session.close()
    # Each worker holds some of the 16 connections (all on one: a chance of 2 in 65,536).
    assert sum(held.values()) == 16
    assert all(count > 0 for count in held.values()), held


@pytest.mark.realserver
def test_a_killed_worker_is_respawned_and_the_server_keeps_answering(tmp_path: Path, blob_root: Path) -> None:
    env = open_environment(tmp_path, blob_root, CROW_WORKERS="2")
    log = tmp_path / "server.log"
    with running(env, log) as url:
        main = _main_pid(log)
        victim = _workers(main, 2)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + TIMEOUT
        while (victim in _children(main) or len(_children(main)) < 2) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert victim not in _children(main) and len(_children(main)) == 2, log.read_text()
        statuses = []
        for _ in range(20):
            try:
                statuses.append(requests.get(f"{url}/v2/", timeout=TIMEOUT).status_code)
            except requests.ConnectionError:  # the respawned worker still loading the application
                time.sleep(0.2)
        assert statuses.count(200) >= 10 and set(statuses) == {200}, log.read_text()
    assert "Respawning worker" in log.read_text()


@pytest.mark.realserver
def test_sigterm_lets_an_in_flight_request_finish_and_refuses_new_connections(
    registry_server: Server,
) -> None:
    session = registry_server.session()
    started = session.post(f"{registry_server.url}/v2/team/app/blobs/uploads/", timeout=TIMEOUT)
    assert started.status_code == 202
    host, port = registry_server.host.split(":")
    half = b"x" * 65536
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as client:
        head = (
            f"PATCH {started.headers['Location']} HTTP/1.1\r\nHost: {registry_server.host}\r\n"
            f"Authorization: {session.headers['Authorization']}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {2 * len(half)}\r\n\r\n"
        )
        client.sendall(head.encode() + half)
        time.sleep(1)  # the request is in its view, reading the body
        os.kill(_main_pid(registry_server.log), signal.SIGTERM)
        deadline = time.monotonic() + TIMEOUT
        while _accepts(host, int(port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _accepts(host, int(port))  # new connections are refused ...
        client.sendall(half)  # ... while the request in flight finishes
        answer = client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 202 "), answer
    assert re.search(rb"(?i)\r\nrange: 0-131071\r\n", answer), answer


def _until_closed(client: socket.socket) -> bytes:
    try:
        return client.recv(4096)
    except ConnectionResetError:
        return b""


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _main_pid(log: Path) -> int:
    return int(re.search(r"main PID: (\d+)", log.read_text()).group(1))


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _workers(main: int, count: int) -> list[int]:
    deadline = time.monotonic() + TIMEOUT
    while len(children := _children(main)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return children


def _connections(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` the process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with_target = os.readlink(fd) if fd.is_symlink() else ""
        if with_target.startswith("socket:["):
            inodes.add(with_target[8:-1])
    established = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
        if local_port == port and state == "01" and inode in inodes:
            established += 1
    return established
