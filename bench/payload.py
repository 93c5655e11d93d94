"""Deterministic upload bodies of any size, produced piece by piece and never held whole.

A body is a pool of seeded pseudo-random 1 MiB blocks taken in turn, each piece
stamped with its index, so no two pieces repeat and producing one costs a copy,
not a random generator's time: the client must not be what a benchmark measures.
"""

import hashlib
import random
from collections.abc import Iterator
from functools import cached_property

PIECE = 1 << 20
POOL = 16


class Payload:
    """``len()`` gives the size and iterating gives the bytes: requests streams it with a Content-Length."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self.size = size
        generator = random.Random(seed)
        self._blocks = [generator.randbytes(PIECE) for _ in range(POOL)]

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        for index, start in enumerate(range(0, self.size, PIECE)):
            piece = index.to_bytes(8, "big") + self._blocks[index % POOL][8:]
            yield piece[: min(PIECE, self.size - start)]

    def chunks(self, size: int) -> Iterator[bytes]:
        """The same bytes cut into pieces of ``size`` (the last one shorter)."""
        buffer = bytearray()
        for piece in self:
            buffer += piece
            while len(buffer) >= size:
                yield bytes(buffer[:size])
                del buffer[:size]
        if buffer:
            yield bytes(buffer)

    @cached_property
    def digest(self) -> str:
        hasher = hashlib.sha256()
        for piece in self:
            hasher.update(piece)
        return f"sha256:{hasher.hexdigest()}"
