"""``crow.listeners``: which slot (socket) each worker takes, and when the arbiter closes one."""

from types import SimpleNamespace

from crow.listeners import Slots


def _arbiter(workers: int) -> SimpleNamespace:
    # What Slots reads of gunicorn's arbiter; port 0, so that each slot binds a port of its own here.
    cfg = SimpleNamespace(address=[("127.0.0.1", 0)], reuse_port=False, backlog=16, is_ssl=False)
    return SimpleNamespace(cfg=cfg, log=None, WORKERS={}, num_workers=workers, LISTENERS=[])


def _fork(slots: Slots, arbiter: SimpleNamespace, pid: int) -> SimpleNamespace:
    worker = SimpleNamespace()
    slots.assign(arbiter, worker)
    arbiter.WORKERS[pid] = worker
    return worker


def _exit(slots: Slots, arbiter: SimpleNamespace, pid: int) -> None:
    slots.release(arbiter, arbiter.WORKERS.pop(pid))


def test_a_dead_workers_slot_waits_for_its_replacement() -> None:
    slots, arbiter = Slots(), _arbiter(workers=2)
    slots.open(arbiter)
    try:
        first, second = _fork(slots, arbiter, 1), _fork(slots, arbiter, 2)
        assert (first.crow_slot, second.crow_slot) == (0, 1)
        listeners = list(arbiter.LISTENERS)
        assert len(listeners) == 2

        _exit(slots, arbiter, 1)  # kill -9
        assert listeners == arbiter.LISTENERS  # its socket, and the connections queued there, stay
        assert listeners[0].sock.fileno() != -1
        assert _fork(slots, arbiter, 3).crow_slot == 0  # the replacement takes it over
    finally:
        for listener in arbiter.LISTENERS:
            listener.close()


def test_a_reload_shares_slots_and_fewer_workers_close_them() -> None:
    slots, arbiter = Slots(), _arbiter(workers=2)
    slots.open(arbiter)
    try:
        _fork(slots, arbiter, 1)
        _fork(slots, arbiter, 2)
        # A reload forks the new workers before the old ones stop: they share the slots meanwhile.
        assert (_fork(slots, arbiter, 3).crow_slot, _fork(slots, arbiter, 4).crow_slot) == (0, 1)
        _exit(slots, arbiter, 1)
        _exit(slots, arbiter, 2)
        assert len(arbiter.LISTENERS) == 2

        arbiter.num_workers = 1  # TTOU: gunicorn stops the oldest worker
        closing = arbiter.LISTENERS[0]
        _exit(slots, arbiter, 3)
        assert arbiter.LISTENERS != [] and closing not in arbiter.LISTENERS
        assert closing.sock is None  # closed (gunicorn drops it): nothing queues where no worker accepts
    finally:
        for listener in arbiter.LISTENERS:
            listener.close()
