"""registry.etags.matches: whether an ``If-None-Match`` names a digest."""

import pytest

from registry import etags


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("*", True),
        (' "sha256:abc" ', True),
        ('W/"sha256:abc"', True),
        ('"x", "sha256:abc"', True),
        ('"x,y", "sha256:abc"', True),
        ('"sha256:abcd"', False),
        ("sha256:abc", False),
        ('"x", *', False),  # "*" stands alone or not at all (RFC 9110 §13.1.2)
    ],
)
def test_matches_reads_if_none_match_as_rfc_9110_does(header: str | None, expected: bool) -> None:
    assert etags.matches(header, "sha256:abc") is expected
