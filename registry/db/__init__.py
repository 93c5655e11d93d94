"""The registry's hand-written SQL, one module per aggregate: the one way to run each query.

``repositories``, ``blobs``, ``manifests`` (with tags and the absent references
of sparse manifests) and ``uploads``. A manifest GET, a blob HEAD and every
statement of a push are lookups or writes of a few columns by unique keys;
built by the ORM, half of such a request's CPU went into compiling the query
and building model instances. Here each is written once, with its table and
column names and its defaults taken from the models' ``_meta`` (``registry.db.sql``),
and nothing else in the registry asks the same question another way.
Everything without a hand-written statement (admin, API, gc, backups) uses
the ORM and the managers in ``registry.models``.
"""
