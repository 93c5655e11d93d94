"""Keeping stored content in order, while the registry serves: the library behind the maintenance commands.

``collect`` is ``manage.py gc`` (its phases: ``retention``, ``untagged``,
``sweep``); ``purge`` is ``manage.py purge_uploads``; ``verify`` is ``manage.py
verify``. Their reports share ``report.Report``. The locks that keep gc, backup
and restore apart are ``registry.locks``: both this package and
``registry.backup`` take them, so they live below both.
"""
