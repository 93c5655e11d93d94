"""The pull-through cache: upstream registries mirrored under a repository prefix (``registry.mirror``).

Part of the ``registry`` app (its tables are the app's). A repository whose name
starts with an upstream's prefix (``docker.io/library/alpine``) is a mirror of
that upstream's repository (``library/alpine`` on ``https://registry-1.docker.io``).
"""
