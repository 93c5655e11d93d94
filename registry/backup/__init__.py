"""Backups and restores: ``manage.py backup`` (``snapshot``) and ``manage.py restore`` (``restore``).

``format`` documents what a backup holds; ``layout`` and ``s3`` write it to a
directory or a bucket (``locations`` picks one); ``accounts`` carries users,
groups, grants, robots and retention rules; ``check`` verifies a backup before
a restore changes anything.
"""
