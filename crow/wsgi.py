"""WSGI application: what ``crow.asgi`` runs in threads for every request the fast path leaves.

Two Django handlers share one process. The registry's ``/v2/`` API goes to a
handler without middleware: its endpoints keep no session, set no cookie,
render no page and check no CSRF token (``registry.endpoint`` does all they
need), and the eight middleware of the admin cost a tenth of a manifest GET's
CPU. Everything else (the admin, the token service, the management API, static
files) goes through ``settings.MIDDLEWARE`` as usual. What a request left of its
body is read by the bridge, on the event loop (``crow.earlyanswers``).
"""

import os

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponseBase
from django.urls import get_resolver

from crow import proxies
from registry import requestlog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")

REGISTRY_PREFIX = "/v2/"


class RegistryHandler(WSGIHandler):
    """Django's WSGI handler with an empty middleware list: the request signals, URL resolver and
    exception handling stay; what ``load_middleware`` would build from ``[]`` is built directly.

    The one check of the site's middleware that /v2/ needs is kept: the Host must be one of
    ``ALLOWED_HOSTS`` (the token realm in a 401 challenge is built from it), else 400; and so is the
    rewrite of a trusted proxy's forwarding headers before it (``crow.proxies``).

    Why private internals (``_middleware_chain``, ``_get_response``, the three hook lists), kept
    deliberately after looking for a public way (issue 14): Django's one public handler API is
    ``get_wsgi_application()``, and ``BaseHandler.load_middleware`` reads the global
    ``settings.MIDDLEWARE`` with no per-handler list, hook or argument. The public alternatives
    are worse: one handler whose middleware skip /v2/ still pays their calls (and a wrapper
    middleware that nests the site's would drop their ``process_view`` hooks, CSRF's among
    them); a bare WSGI app that resolves and calls the view would re-implement
    ``WSGIHandler.__call__`` (signals, script prefix, exception responses, ``file_wrapper``,
    closing) on more internals, not fewer. Measured (5,000 in-process manifest GETs, PostgreSQL):
    0.69 ms each through this handler, 0.84 ms through the site's. This mirrors what
    ``load_middleware`` itself does for an empty list (Django 5.2); ``tests/test_wsgi.py`` pins
    the behaviour, so a Django upgrade that changes these internals fails there.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._host_checked_response)

    def _host_checked_response(self, request: HttpRequest) -> HttpResponseBase:
        proxies.apply(request.META)  # the site's middleware do it there (crow.proxies.ForwardedHeaders)
        request.get_host()  # raises DisallowedHost, which Django answers with 400
        return self._get_response(request)


class Dispatch:
    """``/v2/`` and below to the registry handler, every other path to the site's."""

    def __init__(self, registry: WSGIHandler, site: WSGIHandler) -> None:
        self.registry, self.site = registry, site

    def __call__(self, environ, start_response):
        registry = environ.get("PATH_INFO", "").startswith(REGISTRY_PREFIX)
        handler = self.registry if registry else self.site
        # The request's access-log record (crow.recording lists it by the id in X-Request-ID), and
        # its id on every line logged meanwhile, tracebacks included.
        request_id = environ.get("HTTP_X_REQUEST_ID")
        record = requestlog.live.get(request_id) if request_id else None
        if record is None:
            return handler(environ, start_response)
        environ[requestlog.RECORD] = record
        token = requestlog.request_id.set(request_id)
        try:
            return handler(environ, start_response)
        finally:
            requestlog.request_id.reset(token)


site = get_wsgi_application()  # sets Django up first
application = Dispatch(RegistryHandler(), site)

# Import every view and compile the registry's routes now, while the worker boots, instead of in the
# first request each worker serves (the management API's imports alone take a third of a second).
get_resolver().resolve(REGISTRY_PREFIX)
