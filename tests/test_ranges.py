"""registry.ranges.byte_range: which bytes a blob GET sends."""

import pytest

from registry.errors import RegistryError
from registry.ranges import ByteRange, byte_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ByteRange(0, 100, partial=False)),
        ("bytes=0-9", ByteRange(0, 10, partial=True)),
        ("bytes=90-", ByteRange(90, 10, partial=True)),
        ("bytes=90-500", ByteRange(90, 10, partial=True)),
        ("bytes=-5", ByteRange(95, 5, partial=True)),
        ("bytes=-500", ByteRange(0, 100, partial=True)),
        ("bytes=99-99", ByteRange(99, 1, partial=True)),
        # Unreadable or multiple ranges: the whole blob, as RFC 9110 allows.
        ("bytes=0-1,5-6", ByteRange(0, 100, partial=False)),
        ("items=0-9", ByteRange(0, 100, partial=False)),
        ("bytes=-", ByteRange(0, 100, partial=False)),
    ],
)
def test_it_reads(header: str | None, expected: ByteRange) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=50-10", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_it_refuses_what_cannot_be_satisfied(header: str, size: int) -> None:
    with pytest.raises(RegistryError) as caught:
        byte_range(header, size)
    assert caught.value.status == 416
    assert caught.value.headers["Content-Range"] == f"bytes */{size}"
