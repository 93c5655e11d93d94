"""What every /v2/ endpoint needs, in one decorator.

``endpoint(GET=..., PUT=...)`` builds the view for one URL: it picks the
operation by method (405 ``UNSUPPORTED`` otherwise), renders every
``RegistryError`` as the spec's JSON envelope, turns storage failures into a
retryable 503, and sets the API version header on every answer.
"""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from registry import errors, responses
from registry.errors import RegistryError
from registry.mediatypes import API_VERSION, API_VERSION_HEADER
from registry.storage import StorageError

log = logging.getLogger(__name__)

Operation = Callable[..., HttpResponse]


def endpoint(**operations: Operation) -> Callable[..., HttpResponse]:
    allowed = ", ".join(sorted(operations))

    @csrf_exempt
    def view(request: HttpRequest, **kwargs: str) -> HttpResponse:
        operation = operations.get(request.method or "")
        try:
            if operation is None:
                raise RegistryError(
                    errors.UNSUPPORTED,
                    f"{request.method} is not supported on this endpoint",
                    headers={"Allow": allowed},
                )
            response = operation(request, **kwargs)
        except RegistryError as error:
            response = responses.error(error, head=request.method == "HEAD")
        except StorageError as exc:
            log.warning("storage failed on %s %s: %s", request.method, request.path, exc)
            error = RegistryError(
                errors.UNKNOWN,
                f"blob storage is unavailable, retry later: {exc}",
                status=503,
                headers={"Retry-After": "5"},
            )
            response = responses.error(error, head=request.method == "HEAD")
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.path)
            response = responses.error(RegistryError(errors.UNKNOWN), head=request.method == "HEAD")
        response[API_VERSION_HEADER] = API_VERSION
        return response

    return view
