"""The ``Range`` header of a blob GET (RFC 9110), for one range of bytes."""

import re
from dataclasses import dataclass

from registry import errors
from registry.errors import RegistryError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    length: int
    partial: bool


def byte_range(header: str | None, size: int) -> ByteRange:
    """The bytes to send. A header we cannot read, or several ranges, is ignored: the whole blob."""
    whole = ByteRange(0, size, partial=False)
    match = _RANGE.match((header or "").strip().replace(" ", ""))
    if match is None:
        return whole
    first, last = match.groups()
    if first == "" and last == "":
        return whole
    if first == "":  # the last N bytes
        length = min(int(last), size)
        if length == 0:
            raise _unsatisfiable(size)
        return ByteRange(size - length, length, partial=True)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or end < start:
        raise _unsatisfiable(size)
    return ByteRange(start, end - start + 1, partial=True)


def _unsatisfiable(size: int) -> RegistryError:
    return RegistryError(
        errors.RANGE_INVALID,
        f"the range is outside the blob's {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )
