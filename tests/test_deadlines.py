"""``crow.deadlines``: the watchdog shuts down the socket of a call past its deadline, and only that one."""

import socket
import threading

from crow.deadlines import Watchdog


def test_it_cuts_a_wait_past_its_deadline_and_keeps_the_descriptor() -> None:
    watchdog = Watchdog(tick=3600)  # driven by hand here
    ours, peer = socket.socketpair()
    with ours, peer:
        received: list[bytes] = []
        waiting = threading.Thread(target=lambda: received.append(ours.recv(1)))
        key = watchdog.start(ours.fileno(), 0)
        waiting.start()  # a peer that never answers: only the watchdog ends this wait
        assert watchdog.cut_overdue() == 1
        waiting.join(timeout=10)
        watchdog.stop(key)
        assert received == [b""]  # the wait ended, as psycopg's does, with the connection gone
        assert ours.fileno() != -1  # the owner still holds its descriptor and closes it itself


def test_a_finished_call_is_never_cut() -> None:
    watchdog = Watchdog(tick=3600)
    ours, peer = socket.socketpair()
    with ours, peer:
        watchdog.stop(watchdog.start(ours.fileno(), 0))
        assert watchdog.cut_overdue() == 0
        peer.sendall(b"x")
        assert ours.recv(1) == b"x"


def test_a_call_within_its_deadline_is_left_alone() -> None:
    watchdog = Watchdog(tick=3600)
    ours, peer = socket.socketpair()
    with ours, peer:
        key = watchdog.start(ours.fileno(), 60)
        assert watchdog.cut_overdue() == 0
        watchdog.stop(key)
