"""How the console writes sizes, digests and pull references: human first, exact on hover."""

from django.utils.html import format_html
from django.utils.safestring import SafeString

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
SHORT_DIGEST = 12  # hex characters shown, as docker and the reference registry's UIs show them


def human_size(size: int | None) -> str:
    """IEC units, one decimal from KiB up: ``1.5 MiB``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def size_html(size: int | None) -> SafeString:
    """A human size whose exact byte count shows on hover."""
    if size is None:
        return format_html("{}", "-")
    return format_html('<span class="crow-size" title="{} bytes">{}</span>', f"{size:,}", human_size(size))


def short_digest(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:SHORT_DIGEST]}" if hex_part else digest


def digest_html(digest: str, url: str | None = None) -> SafeString:
    """The short digest (linked to ``url`` if given) with the full value on hover."""
    if url is None:
        return format_html('<code class="crow-digest" title="{}">{}</code>', digest, short_digest(digest))
    return format_html(
        '<a href="{}"><code class="crow-digest" title="{}">{}</code></a>', url, digest, short_digest(digest)
    )


def pull_reference(host: str, name: str, reference: str) -> str:
    """``HOST/name:tag`` or ``HOST/name@sha256:...``, as a client pulls it."""
    separator = "@" if ":" in reference else ":"
    return f"{host}/{name}{separator}{reference}"


def copyable(text: str) -> SafeString:
    """``text`` in a field with a copy button (the inline script of ``admin/base_site.html``)."""
    return format_html(
        '<span class="crow-copy"><input class="crow-ref" readonly value="{}" size="{}">'
        '<button type="button" class="crow-copy-button" title="copy">copy</button></span>',
        text,
        min(len(text), 40),
    )
