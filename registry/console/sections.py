"""The parts of a detail page: tables, definition lists, and lists that stop at ``SHOWN`` rows."""

from typing import Any

from django.db.models import QuerySet
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

SHOWN = 100  # rows of a section before "and N more"


def table(headers: tuple[str, ...], rows: list[tuple], more: int = 0) -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    cells = "<td>{}</td>" * len(headers)
    body = format_html_join("", f"<tr>{cells}</tr>", rows)
    extra = format_html("<p>and {} more</p>", more) if more > 0 else ""
    return format_html(
        '<table class="crow-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}', head, body, extra
    )


def limited(queryset: QuerySet, total: int | None = None) -> tuple[list, int]:
    rows = list(queryset[: SHOWN + 1])
    if len(rows) <= SHOWN:
        return rows, 0
    return rows[:SHOWN], (total if total is not None else queryset.count()) - SHOWN


def definitions(rows: list[tuple[str, Any]]) -> SafeString:
    return format_html('<dl class="crow-facts">{}</dl>', format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows))
