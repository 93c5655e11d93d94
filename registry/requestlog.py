"""What one request did, for the access log and the metrics: a ``Record``, filled by whoever learns each part.

``crow.recording`` makes a record as each request arrives (its id, method,
path, client) and finishes it with the status, the bytes each way and the
duration. What only the application knows is added on the way: the operation
(a route's name and the method, ``operation``), the repository and reference,
the user. The fast path fills them in itself; Django's requests find their
record in ``live`` by request id (``crow.wsgi`` puts it in the environ as
``RECORD``; ``registry.endpoint`` and the token service fill it).

``request_id`` holds the request id of the request this thread or task is
serving, for log lines written meanwhile (tracebacks included:
``crow.logformat``).
"""

from contextvars import ContextVar

RECORD = "crow.record"  # the environ (request.META) key of a Django request's record

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# (route name, method) -> operation: the ``operation`` label of every request metric, and the access
# log's route. A pair not listed is ``<route>`` alone: bounded by the routes, whatever the method.
OPERATIONS = {
    ("manifest", "GET"): "manifest_get",
    ("manifest", "HEAD"): "manifest_head",
    ("manifest", "PUT"): "manifest_put",
    ("manifest", "DELETE"): "manifest_delete",
    ("blob", "GET"): "blob_get",
    ("blob", "HEAD"): "blob_head",
    ("blob", "DELETE"): "blob_delete",
    ("uploads", "POST"): "blob_upload_start",
    ("upload", "GET"): "blob_upload_status",
    ("upload", "PATCH"): "blob_upload_chunk",
    ("upload", "PUT"): "blob_upload_finish",
    ("upload", "DELETE"): "blob_upload_cancel",
    ("tags", "GET"): "tags_list",
    ("referrers", "GET"): "referrers_list",
    ("version", "GET"): "version_check",
    ("catalog", "GET"): "catalog_list",
}
# The operations that count in ``crow_uploads_in_progress`` while they run.
UPLOADS = frozenset({"blob_upload_start", "blob_upload_chunk", "blob_upload_finish"})


def operation(route: str, method: str) -> str:
    return OPERATIONS.get((route, method), route)


class Record:
    """One request, from its arrival to its answer's last byte."""

    __slots__ = (
        "request_id",
        "method",
        "path",
        "client",
        "operation",
        "repository",
        "reference",
        "user",
        "status",
        "received",
        "sent",
        "sent_by_path",
    )

    def __init__(self, request_id: str, method: str, path: str, client: str, operation: str) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.client = client
        self.operation = operation
        self.repository = ""
        self.reference = ""
        self.user = ""
        self.status = 0
        self.received = 0  # request body bytes
        self.sent = 0  # answer body bytes the application sent
        self.sent_by_path = 0  # answer body bytes the server sent from a file (pathsend)

    def named(self, route: str, method: str, repository: str = "", reference: str = "") -> None:
        self.operation = operation(route, method)
        self.repository = repository
        self.reference = reference


# The records of the requests this process's Django threads are serving, by request id.
live: dict[str, Record] = {}
