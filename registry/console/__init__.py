"""The operator console: the Django admin as a registry browser, one module per kind of page.

``registry.admin`` registers these; the templates are under ``templates/admin/``.
Content is written by pushes only: manifests and blobs are read-only here; a
tag delete is the registry's delete (``registry.deletions``), and cancelling
an upload frees its storage as the API's DELETE does (``registry.uploads``).
"""
