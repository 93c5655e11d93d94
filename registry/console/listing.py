"""Changelists whose page of rows is described in a fixed number of queries, whatever its length.

A ``list_display`` callable sees one row at a time; what needs a query
(configs of images, the Host the client used) is fetched once for the whole
page here, after the page's own query, and attached to each row.
"""

from collections.abc import Callable
from typing import Any

from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest


def changelist_describing(describe: Callable[[list[Any], HttpRequest], None]) -> type[ChangeList]:
    """A ChangeList class that calls ``describe(rows, request)`` once on each page of rows."""

    class DescribedChangeList(ChangeList):
        def get_results(self, request: HttpRequest) -> None:
            super().get_results(request)
            self.result_list = list(self.result_list)
            describe(self.result_list, request)

    return DescribedChangeList
