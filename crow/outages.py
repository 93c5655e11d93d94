"""A database outage on the site's routes (the token service, the management API, the admin) is a 503.

``/v2/`` renders its own (``registry.endpoint``) and runs without middleware;
the token service answers its own JSON too. Elsewhere, an ``OperationalError``
or ``InterfaceError`` escaping a view (the database down, restarting, hung past
``CROW_DB_QUERY_TIMEOUT``) would be Django's 500 page: a client learns that the
server is broken instead of when to come back.
"""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from registry import errors, responses

log = logging.getLogger(__name__)


class DatabaseOutageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.warning("database failed on %s %s: %s", request.method, request.path, exception)
        error = errors.unavailable(errors.DATABASE_UNAVAILABLE)
        return responses.error(error, head=request.method == "HEAD")
