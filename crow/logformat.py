"""The two log formats (``CROW_LOG_FORMAT``): plain lines for a terminal, or one JSON object per line.

Both carry the request id of the request being served when the line was
written (``registry.requestlog.request_id``): an error's traceback and the
request's access line (``crow.recording``) share it.

A JSON line holds ``time`` (UTC, ISO 8601, milliseconds), ``level``,
``logger``, ``message``, ``request_id`` when there is one, an access line's
fields (``method``, ``path``, ``route``, ``repository``, ``reference``,
``user``, ``status``, ``bytes_in``, ``bytes_out``, ``duration`` in seconds,
``client``), and ``error``, the traceback, when the line reports an exception.
"""

import json
import logging
from datetime import UTC, datetime

from registry.requestlog import request_id


class RequestIdFilter(logging.Filter):
    """Sets ``request_id`` on every record ("" outside a request), for both formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or ""
        return True


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        rid = getattr(record, "request_id", "")
        return f"{line} [{rid}]" if rid else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "") or request_id.get()
        if rid:
            entry["request_id"] = rid
        access = getattr(record, "access", None)
        if access:
            entry.update(access)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["error"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
