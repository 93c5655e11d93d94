"""``crow/gunicorn.conf.py``: a socket per worker, and no silent sharing of an address."""

import http.client
import importlib.util
import os
import re
import signal
import socket
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import requests

from tests import processes
from tests.server import GUNICORN, ROOT, gunicorn, open_environment, running, stop

TIMEOUT = 30


@pytest.mark.realserver
def test_a_second_server_on_a_taken_address_refuses_to_start(tmp_path: Path, blob_root: Path) -> None:
    # Each worker binds with SO_REUSEPORT, which would let a second server share the port and take
    # half of the first one's connections; it must fail as a plain bind does.
    env = open_environment(tmp_path, blob_root, CROW_WORKERS="2")
    with running(env, tmp_path / "first.log") as url:
        second = processes.run(
            [str(GUNICORN), "--config", "crow/gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert second.returncode != 0
        assert f"cannot listen at {env['CROW_BIND']}: Address already in use" in second.stderr
        # The first server still answers every connection (none went to the second one's workers).
        for _ in range(6):
            assert requests.get(f"{url}/v2/", timeout=TIMEOUT).status_code == 200
    assert f"Listening at {env['CROW_BIND']}" in (tmp_path / "first.log").read_text()


@pytest.mark.realserver
def test_a_unix_socket_is_one_socket_that_every_worker_serves(tmp_path: Path, blob_root: Path) -> None:
    # With a socket per worker, each worker's bind would take the path from the one before.
    path = tmp_path / "crow.sock"
    env = open_environment(tmp_path, blob_root, CROW_BIND=f"unix:{path}", CROW_WORKERS="2")
    log = tmp_path / "server.log"
    with open(log, "wb") as output:
        process = gunicorn(env, output)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _answers(path) and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        statuses = [_status_over(path) for _ in range(20)]
    finally:
        stop(process)
    assert statuses == ["200"] * 20, log.read_text()
    workers = {line.split("pid: ")[1] for line in log.read_text().splitlines() if "Booting worker" in line}
    assert len(workers) == 2


@pytest.mark.realserver
def test_connections_queued_for_a_worker_that_dies_are_served_by_its_replacement(
    tmp_path: Path, blob_root: Path
) -> None:
    # The kernel queues a connection on one worker's socket until the worker accepts it. A worker
    # stopped, then killed, leaves its queue behind: the arbiter keeps the socket for the next worker.
    env = open_environment(tmp_path, blob_root, CROW_WORKERS="2")
    log = tmp_path / "server.log"
    with running(env, log):
        arbiter = int(re.search(r"Listening at: .*?\((\d+)\)", log.read_text()).group(1))
        workers = _children(arbiter)
        assert len(workers) == 2, log.read_text()
        victim = workers[0]
        os.kill(victim, signal.SIGSTOP)
        try:
            host, port = env["CROW_BIND"].split(":")
            # About half land on the stopped worker's socket and wait there, accepted by the kernel only.
            clients = [socket.create_connection((host, int(port)), timeout=TIMEOUT) for _ in range(64)]
        finally:
            os.kill(victim, signal.SIGKILL)
        statuses = [_get(client, host, "/v2/") for client in clients]
    assert statuses == [200] * len(clients), log.read_text()


def _children(pid: int) -> list[int]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        if len(children) >= 2:
            return children
        time.sleep(0.1)
    return children


def _get(client: socket.socket, host: str, path: str) -> int | str:
    """The status of a GET sent on an open connection, or the error that the client saw instead."""
    connection = http.client.HTTPConnection(host, timeout=TIMEOUT)
    connection.sock = client
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError as exc:  # what a connection queued on a dead worker's socket saw: a reset
        return repr(exc)
    finally:
        connection.close()


def _answers(path: Path) -> bool:
    try:
        return _status_over(path) == "200"
    except OSError:
        return False


def _status_over(path: Path) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(TIMEOUT)
        client.connect(str(path))
        client.sendall(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return client.recv(64).split(b" ")[1].decode()


def _load_conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crow_gunicorn_conf", ROOT / "crow" / "gunicorn.conf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not hasattr(socket, "TCP_NOTSENT_LOWAT"), reason="no TCP_NOTSENT_LOWAT on this platform")
def test_connections_queue_at_most_notsent_lowat_unsent_bytes(tmp_path: Path) -> None:
    # Set on each worker's listeners; the connections they accept inherit it (a kernel behaviour
    # the setting relies on, so asserted here too). A Unix-socket listener is left alone.
    conf = _load_conf()
    tcp = socket.create_server(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(tmp_path / "crow.sock"))
    worker = SimpleNamespace(
        sockets=[
            SimpleNamespace(FAMILY=socket.AF_INET, sock=tcp),
            SimpleNamespace(FAMILY=socket.AF_UNIX, sock=unix),
        ]
    )
    with tcp, unix:
        conf.post_fork(None, worker)
        with socket.create_connection(tcp.getsockname(), timeout=TIMEOUT):
            accepted, _ = tcp.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT) == conf.NOTSENT_LOWAT
    assert conf.NOTSENT_LOWAT == 16 * 1024
