"""The reference grammar of the distribution spec: names, tags, digests, upload ids.

Patterns are kept as strings without anchors so that ``registry.urls`` builds
its routes from them, and compiled anchored here for validation.
"""

import re
from dataclasses import dataclass

NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME = rf"{NAME_COMPONENT}(?:/{NAME_COMPONENT})*"
TAG = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
# Only the algorithms the spec registers; both with lowercase hex of their exact length.
DIGEST = r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}"
REFERENCE = rf"(?:{DIGEST})|(?:{TAG})"
UPLOAD_ID = r"[0-9a-f]{32}"

NAME_MAX_LENGTH = 255

_name = re.compile(rf"^{NAME}$")
_tag = re.compile(rf"^{TAG}$")
_digest = re.compile(rf"^(?:{DIGEST})$")
# What an operator types to find content by digest: "sha256:3f2a", or hex alone (taken as sha256).
_digest_prefix = re.compile(
    r"^(?:(?P<algorithm>sha256|sha512):(?P<hex>[a-f0-9]{1,128})|(?P<bare>[a-f0-9]{6,128}))$"
)


def is_name(value: str) -> bool:
    return len(value) <= NAME_MAX_LENGTH and bool(_name.fullmatch(value))


def is_tag(value: str) -> bool:
    return bool(_tag.fullmatch(value))


def is_digest(value: str) -> bool:
    return bool(_digest.fullmatch(value))


def digest_prefix(value: str) -> str | None:
    """A digest's start from what an operator typed (``sha256:3F2A``, or six hex digits at least), or None."""
    match = _digest_prefix.fullmatch(value.strip().lower())
    if match is None:
        return None
    if match["bare"]:
        return f"sha256:{match['bare']}"
    return f"{match['algorithm']}:{match['hex']}"


@dataclass(frozen=True)
class Reference:
    """What follows ``/manifests/``: a tag or a digest, never both."""

    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, value: str) -> "Reference":
        if is_digest(value):
            return cls(digest=value)
        return cls(tag=value)

    def __str__(self) -> str:
        return self.digest or self.tag or ""
