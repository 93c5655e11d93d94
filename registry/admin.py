"""The operator's console, registered on Django's admin site; its pages are in ``registry.console``.

Content is written by pushes only: manifests and blobs are read-only here;
deleting tags is the registry's delete, cancelling an upload frees its
storage; ``manage.py gc`` frees what nothing references any more.
"""

from django.contrib import admin

from registry.console.blobs import BlobAdmin
from registry.console.maintenance import ReadOnlySwitchAdmin
from registry.console.manifests import ManifestAdmin
from registry.console.repositories import RepositoryAdmin
from registry.console.retention import RetentionRuleAdmin
from registry.console.tags import TagAdmin
from registry.console.uploads import UploadAdmin
from registry.console.upstreams import UpstreamAdmin
from registry.mirror.models import Upstream
from registry.models import Blob, Manifest, ReadOnlySwitch, Repository, RetentionRule, Tag, Upload

admin.site.site_header = "CRoW registry"
admin.site.site_title = "CRoW"
admin.site.index_title = "Registry overview"
admin.site.site_url = "/"
# The tables are wide (digests, platforms, pull references): the page is theirs.
admin.site.enable_nav_sidebar = False

admin.site.register(Repository, RepositoryAdmin)
admin.site.register(Tag, TagAdmin)
admin.site.register(Manifest, ManifestAdmin)
admin.site.register(Blob, BlobAdmin)
admin.site.register(Upload, UploadAdmin)
admin.site.register(RetentionRule, RetentionRuleAdmin)
admin.site.register(Upstream, UpstreamAdmin)
admin.site.register(ReadOnlySwitch, ReadOnlySwitchAdmin)

from registry.events import admin as events_admin  # noqa: E402, F401 - the audit log and webhooks
