"""crow.bridge: wsgi.input's file semantics and failures, and which answers go out by path."""

import asyncio
import threading
import time
from pathlib import Path

import pytest

from crow import bridge
from crow.bridge import BUFFER_LIMIT, FileWrapper, Input


def _reading(
    messages: list[dict],
    timeout: float,
    reads: list[int],
    length: int | None = None,
    read1: bool = False,
    pause: float = 0.01,
) -> list:
    """Run ``reads`` on an ``Input`` fed ``messages`` (one each ``pause`` seconds, then nothing), as a
    WSGI thread would."""
    results: list = []

    async def main() -> None:
        queue = list(messages)

        async def receive() -> dict:
            await asyncio.sleep(pause)
            if queue:
                return queue.pop(0)
            await asyncio.sleep(3600)  # a client that sends nothing more

        body = Input(asyncio.get_running_loop(), receive, timeout, length)

        def thread() -> None:
            for size in reads:
                try:
                    results.append(body.read1(size) if read1 else body.read(size))
                except Exception as exc:
                    results.append(type(exc))

        worker = threading.Thread(target=thread)
        worker.start()
        await asyncio.to_thread(worker.join)

    asyncio.run(main())
    return results


def piece(data: bytes, more: bool = True) -> dict:
    return {"type": "http.request", "body": data, "more_body": more}


def test_read_returns_what_it_was_asked_for_until_the_body_ends() -> None:
    messages = [piece(b"ab"), piece(b""), piece(b"cde"), piece(b"f", more=False)]
    assert _reading(messages, 5, [4, 4, 4]) == [b"abcd", b"ef", b""]


def test_a_body_that_sends_nothing_times_out_and_a_client_gone_resets() -> None:
    assert _reading([piece(b"ab")], 0.2, [2, 1]) == [b"ab", TimeoutError]
    # What arrived before a stall or a disconnect is read first (a short read), then the error.
    assert _reading([piece(b"ab")], 0.2, [4, 1]) == [b"ab", TimeoutError]
    assert _reading([piece(b"ab"), {"type": "http.disconnect"}], 5, [4, 1]) == [b"ab", ConnectionResetError]


def test_read1_returns_what_came_in_one_piece_and_a_declared_length_ends_the_body() -> None:
    messages = [piece(b"ab"), piece(b"cd"), piece(b"e", more=False)]
    assert _reading(messages, 5, [10, 10]) == [b"abcde", b""]
    pieces = _reading(messages, 5, [3, 3, 3, 3, 3], read1=True)
    assert b"".join(pieces) == b"abcde" and all(len(each) <= 3 for each in pieces) and pieces[-1] == b""
    # Once the declared length came, the body is whole: granian's closing message is not awaited
    # (this one never comes: a read that waited for it would time out).
    assert _reading([piece(b"ab"), piece(b"cde")], 0.5, [5, 1], length=5) == [b"abcde", b""]
    assert _reading([piece(b"ab"), piece(b"cde")], 0.5, [9, 1], read1=True, length=5) == [b"abcde", b""]
    assert _reading([piece(b"ab")], 0.2, [5, 1], length=5) == [b"ab", TimeoutError]


def test_every_byte_reaches_the_thread_in_order_whatever_the_reads() -> None:
    messages = [piece(b"ab"), piece(b"cd"), piece(b"ef"), piece(b"g", more=False)]
    for size in (1, 3, 100):
        pieces = _reading(messages, 5, [size] * 9, read1=True, pause=0)
        assert b"".join(pieces) == b"abcdefg" and all(len(each) <= size for each in pieces)
        assert pieces[-1] == b""
    assert _reading(messages, 5, [5, 5], pause=0) == [b"abcde", b"fg"]
    # A stall or a disconnect is the thread's, after what arrived.
    assert _reading([piece(b"ab")], 0.2, [4, 1]) == [b"ab", TimeoutError]
    gone = [piece(b"ab"), {"type": "http.disconnect"}]
    assert _reading(gone, 5, [4, 1]) == [b"ab", ConnectionResetError]


def test_a_receive_that_raises_is_a_client_gone_at_once() -> None:
    async def main() -> list:
        async def receive() -> dict:
            raise OSError("connection lost")

        body = Input(asyncio.get_running_loop(), receive, 30)
        results: list = []

        def thread() -> None:
            try:
                body.read1(10)
            except Exception as exc:
                results.append(type(exc))

        started = time.monotonic()
        await asyncio.to_thread(thread)
        results.append(time.monotonic() - started < 5)  # not the 30 s body timeout
        return results

    assert asyncio.run(main()) == [ConnectionResetError, True]


def test_a_stall_is_answered_even_if_the_receive_ignores_its_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bridge, "STOP_WAIT", 0.2)

    async def main() -> list:
        async def receive() -> dict:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:  # a server whose receive takes 3 s to end once cancelled
                await asyncio.sleep(3)
                raise

        body = Input(asyncio.get_running_loop(), receive, 0.3)
        results: list = []

        def thread() -> None:
            started = time.monotonic()
            try:
                body.read1(10)
            except Exception as exc:
                results.append(type(exc))
            results.append(time.monotonic() - started < 2)  # the timeout and the bound, not the 3 s

        await asyncio.to_thread(thread)
        return results

    assert asyncio.run(main()) == [TimeoutError, True]


def test_a_slow_but_steady_body_is_no_stall() -> None:
    # A byte every 0.1 s against a body timeout of 0.3 s: two seconds of reading, no timeout.
    messages = [piece(b"x") for _ in range(19)] + [piece(b"y", more=False)]
    assert _reading(messages, 0.3, [20, 1], pause=0.1) == [b"x" * 19 + b"y", b""]
    assert b"".join(_reading(messages, 0.3, [64] * 21, read1=True, pause=0.1)) == b"x" * 19 + b"y"


def test_the_body_is_received_at_most_a_buffer_ahead_of_the_reads() -> None:
    received: list[int] = []
    ahead: list[int] = []

    async def main() -> None:
        chunk = b"z" * (64 * 1024)

        async def receive() -> dict:
            received.append(len(chunk))
            await asyncio.sleep(0)
            return piece(chunk, more=len(received) < 64)  # 4 MiB in all

        body = Input(asyncio.get_running_loop(), receive, 5)

        def thread() -> None:
            got = len(body.read1(64 * 1024))
            time.sleep(0.3)  # a slow disk: the loop receives meanwhile, up to the limit
            ahead.append(sum(received) - got)
            while data := body.read1(1024 * 1024):
                got += len(data)
            assert got == 4 * 1024 * 1024

        worker = threading.Thread(target=thread)
        worker.start()
        await asyncio.to_thread(worker.join)

    asyncio.run(main())
    assert sum(received) == 4 * 1024 * 1024
    assert BUFFER_LIMIT <= ahead[0] <= BUFFER_LIMIT + 64 * 1024


def test_a_drain_reads_to_the_end_and_close_drops_what_waits() -> None:
    async def main() -> tuple[list[bytes], bool]:
        queue = [piece(b"ab"), piece(b"cd"), piece(b"e", more=False)]
        waiting: list[asyncio.Future] = []

        async def receive() -> dict:
            await asyncio.sleep(0.01)
            if queue:
                return queue.pop(0)
            waiting.append(asyncio.get_running_loop().create_future())
            return await waiting[-1]

        body = Input(asyncio.get_running_loop(), receive, 5)
        # The application answered without reading: the drain takes the whole body.
        drained = []
        while not body.ended or drained[-1]:
            drained.append(await body.next_piece())
        other = Input(asyncio.get_running_loop(), receive, 5)
        prefetch = asyncio.ensure_future(other.prefetch(4))  # nothing comes: a receive waits
        await asyncio.sleep(0.05)
        other.close()
        await prefetch
        await asyncio.sleep(0)
        return drained, bool(waiting) and waiting[-1].cancelled()

    drained, dropped = asyncio.run(main())
    assert b"".join(drained) == b"abcde"
    assert dropped


def test_only_a_whole_regular_file_goes_out_by_path(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 1000)
    with open(path, "rb") as whole:
        assert FileWrapper(whole).whole_file(1000) == str(path)
    with open(path, "rb") as part:
        assert FileWrapper(part).whole_file(500) is None  # a Range
        part.seek(10)
        assert FileWrapper(part).whole_file(990) is None
    with open(path, "rb") as replaced:
        path.unlink()
        path.write_bytes(b"y" * 1000)  # the name leads to another file now
        assert FileWrapper(replaced).whole_file(1000) is None


@pytest.mark.parametrize("filelike", [object(), None])
def test_what_has_no_descriptor_is_read(filelike: object) -> None:
    assert FileWrapper(filelike).whole_file(0) is None
