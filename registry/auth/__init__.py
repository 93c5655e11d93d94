"""Who may pull, push and delete: the token service, users, robot accounts, per-repository permissions.

A Django app of its own (label ``registry_auth``, so it never clashes with
``django.contrib.auth``). The one entry point of the protocol views is
``registry.auth.access.authorize``, called by ``registry.endpoint`` for every
/v2/ request.
"""
