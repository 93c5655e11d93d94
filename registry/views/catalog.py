"""The catalog: ``GET /v2/_catalog?n=&last=``."""

from django.http import HttpRequest, HttpResponse

from registry.endpoint import endpoint
from registry.models import Repository
from registry.views.paging import page_request, page_response


def list_repositories(request: HttpRequest) -> HttpResponse:
    n, last = page_request(request)
    return page_response(request, "repositories", Repository.objects.page(n + 1, last), n)


catalog = endpoint(GET=list_repositories, HEAD=list_repositories)
