"""The parts of a detail page: tables, definition lists, and lists that stop at ``SHOWN`` rows."""

from typing import Any

from django.db.models import QuerySet
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

SHOWN = 100  # rows of a section before a link to the whole list


def table(headers: tuple[str, ...], rows: list[tuple]) -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    cells = "<td>{}</td>" * len(headers)
    body = format_html_join("", f"<tr>{cells}</tr>", rows)
    return format_html(
        '<table class="crow-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body
    )


def limited(queryset: QuerySet) -> tuple[list, bool]:
    """The first ``SHOWN`` rows, and whether there are more (one query: no count)."""
    rows = list(queryset[: SHOWN + 1])
    return rows[:SHOWN], len(rows) > SHOWN


def more(more_rows: bool, url: str) -> SafeString | str:
    """A link to the whole list, under a section that shows only its first ``SHOWN`` rows."""
    if not more_rows:
        return ""
    return format_html(
        '<p class="crow-more">the first {} are shown: <a href="{}">see them all</a></p>', SHOWN, url
    )


def definitions(rows: list[tuple[str, Any]]) -> SafeString:
    return format_html('<dl class="crow-facts">{}</dl>', format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows))
