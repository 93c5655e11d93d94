"""The /v2/ routes, built from the reference grammar.

A path whose name, reference, digest or upload id breaks the grammar matches
no route but the last, which says what is wrong (``views.base.diagnose``).
``tests/test_urls.py`` pins the parsing as a table.
"""

from django.urls import re_path

from registry.references import DIGEST, NAME, REFERENCE, UPLOAD_ID
from registry.views import base, blobs, catalog, manifests, referrers, tags, uploads

_name = rf"(?P<name>{NAME})"

# Every route ends in its own literal suffix, so at most one of them (and the
# catch-all) matches a path: the order only sets the cost. The resolver tries
# them in turn, so the pull path comes first.
urlpatterns = [
    re_path(rf"^v2/{_name}/manifests/(?P<reference>{REFERENCE})$", manifests.manifest, name="manifest"),
    re_path(rf"^v2/{_name}/blobs/(?P<digest>{DIGEST})$", blobs.blob, name="blob"),
    re_path(rf"^v2/{_name}/blobs/uploads/(?P<upload_id>{UPLOAD_ID})$", uploads.upload, name="upload"),
    re_path(rf"^v2/{_name}/blobs/uploads/?$", uploads.uploads_collection, name="uploads"),
    re_path(rf"^v2/{_name}/tags/list$", tags.tags, name="tags"),
    re_path(rf"^v2/{_name}/referrers/(?P<digest>{DIGEST})$", referrers.referrers, name="referrers"),
    re_path(r"^v2/$", base.version, name="version"),
    re_path(r"^v2/_catalog$", catalog.catalog, name="catalog"),
    re_path(r"^v2/(?P<path>.*)$", base.unmatched, name="unmatched"),
]
