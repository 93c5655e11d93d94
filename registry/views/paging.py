"""The ``n``/``last`` pagination of the tags list and the catalog."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from registry import errors, responses
from registry.errors import ErrorCode, RegistryError


def page_request(
    request: HttpRequest, is_entry: Callable[[str], bool], invalid: ErrorCode
) -> tuple[int, str | None]:
    """``n`` and ``last``; ``last`` must be something the list could hold (``is_entry``), else ``invalid``.

    The spec says ``last`` "MUST be a proper tag": one that is not cannot come from an
    earlier page, and text the database refuses (a NUL byte) never reaches a query.
    """
    raw = request.GET.get("n")
    if raw is None or raw == "":
        n = settings.CROW_PAGE_SIZE
    else:
        try:
            n = int(raw)
        except ValueError:
            raise RegistryError(
                errors.PAGINATION_NUMBER_INVALID, "n must be a non-negative integer"
            ) from None
        if n < 0:
            raise RegistryError(errors.PAGINATION_NUMBER_INVALID, "n must be a non-negative integer")
    last = request.GET.get("last") or None
    if last is not None and not is_entry(last):
        raise RegistryError(invalid, "last must name an entry of the list", detail={"last": last})
    return min(n, settings.CROW_MAX_PAGE_SIZE), last


def page_response(
    request: HttpRequest, key: str, items: list[str], n: int, extra: dict | None = None
) -> HttpResponse:
    """``items`` holds up to ``n + 1`` entries: one more than the page says there is a next page."""
    body = dict(extra or {})
    body[key] = items[:n]
    response = responses.json_body(body, head=request.method == "HEAD")
    if len(items) > n and n > 0:
        response["Link"] = responses.next_page_link(request.path, n, items[n - 1])
    return response
