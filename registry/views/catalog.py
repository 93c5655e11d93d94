"""The catalog: ``GET /v2/_catalog?n=&last=``, listing only the repositories the caller may pull."""

from django.http import HttpRequest, HttpResponse

from registry import errors, references
from registry.auth import permissions
from registry.auth.access import identity_of
from registry.endpoint import endpoint
from registry.views.paging import page_request, page_response


def list_repositories(request: HttpRequest) -> HttpResponse:
    n, last = page_request(request, references.is_name, errors.NAME_INVALID)
    names = permissions.pullable(identity_of(request)).order_by("name").values_list("name", flat=True)
    if last:
        names = names.filter(name__gt=last)
    return page_response(request, "repositories", list(names[: n + 1]), n)


catalog = endpoint(GET=list_repositories, HEAD=list_repositories)
