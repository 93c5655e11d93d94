"""Tags list: ``GET /v2/<name>/tags/list?n=&last=``."""

from django.http import HttpRequest, HttpResponse

from registry import errors, references
from registry.endpoint import endpoint
from registry.errors import RegistryError
from registry.models import Repository, Tag
from registry.views.paging import page_request, page_response


def list_tags(request: HttpRequest, name: str) -> HttpResponse:
    repository = Repository.objects.filter(name=name).first()
    if repository is None:
        raise RegistryError(errors.NAME_UNKNOWN, detail={"name": name})
    n, last = page_request(request, references.is_tag, errors.TAG_INVALID)
    names = Tag.objects.page(repository, n + 1, last)
    return page_response(request, "tags", names, n, extra={"name": name})


tags = endpoint(GET=list_tags, HEAD=list_tags)
