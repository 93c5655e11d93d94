"""The tests' own plumbing: ports never handed out twice, process groups stopped whole, servers marked."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import processes
from tests.server import ROOT, _port_range, free_port, open_environment, server

DEADLINE = 30  # seconds, for what must happen however loaded the machine

# A leader that ignores SIGTERM and forks a child that ignores it too, then prints the child's pid.
STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = os.fork()
if child:
    print(child, flush=True)
time.sleep(600)
"""


def running(pid: int) -> bool:
    """Is ``pid`` a live process (not gone, not a zombie nobody reaped yet)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def ends(pid: int) -> bool:
    """Does ``pid`` end within a while? (A SIGKILL is delivered, not awaited.)"""
    deadline = time.monotonic() + DEADLINE
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not running(pid)


def test_free_port_never_hands_out_a_port_twice_nor_an_ephemeral_one() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(port < low for port in ports)  # the kernel never picks these for anyone else
    assert all(port in _port_range() for port in ports)


def test_free_port_skips_the_ports_a_concurrent_test_run_holds() -> None:
    ours = {free_port() for _ in range(50)}
    script = "import django; django.setup(); from tests.server import free_port;"
    script += " print(*[free_port() for _ in range(300)])"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "crow.settings"}
    other = processes.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert other.returncode == 0, other.stderr
    theirs = {int(port) for port in other.stdout.split()}
    assert len(theirs) == 300
    assert not ours & theirs


def test_stop_ends_the_whole_process_group_even_when_it_ignores_sigterm() -> None:
    leader = processes.spawn([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    assert running(child)
    processes.stop(leader, timeout=1)
    assert leader.returncode == -9
    assert ends(child)


def test_a_command_that_times_out_leaves_nothing_behind(tmp_path: Path) -> None:
    script = STUBBORN.replace("print(child, flush=True)", "open('child', 'w').write(str(child))")
    with pytest.raises(subprocess.TimeoutExpired):
        processes.run([sys.executable, "-c", script], cwd=tmp_path, timeout=5)
    assert ends(int((tmp_path / "child").read_text()))


def test_starting_a_server_without_the_realserver_marker_fails(tmp_path: Path, blob_root: Path) -> None:
    env = open_environment(tmp_path, blob_root)
    with open(tmp_path / "server.log", "wb") as output, pytest.raises(pytest.fail.Exception) as failure:
        server(env, output)
    assert "starts a server: mark it realserver" in str(failure.value)
