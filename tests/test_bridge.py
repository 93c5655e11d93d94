"""crow.bridge: wsgi.input's file semantics and failures, and which answers go out by path."""

import asyncio
import threading
from pathlib import Path

import pytest

from crow.bridge import FileWrapper, Input


def _reading(
    messages: list[dict], timeout: float, reads: list[int], length: int | None = None, read1: bool = False
) -> list:
    """Run ``reads`` on an ``Input`` fed ``messages`` (then nothing), as a WSGI thread would."""
    results: list = []

    async def main() -> None:
        queue = list(messages)

        async def receive() -> dict:
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
    assert _reading(messages, 5, [3, 3, 3, 3], read1=True) == [b"abc", b"d", b"e", b""]
    # Once the declared length came, the body is whole: granian's closing message is not awaited
    # (this one never comes: a read that waited for it would time out).
    assert _reading([piece(b"ab"), piece(b"cde")], 0.5, [5, 1], length=5) == [b"abcde", b""]
    assert _reading([piece(b"ab"), piece(b"cde")], 0.5, [9, 1], read1=True, length=5) == [b"abcde", b""]
    assert _reading([piece(b"ab")], 0.2, [5, 1], length=5) == [b"ab", TimeoutError]


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
