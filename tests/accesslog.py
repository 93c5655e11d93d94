"""A real server's JSON log (``CROW_LOG_FORMAT=json``) read back: every line, or a request's access line."""

import json
import time
from pathlib import Path
from typing import Any


def lines(log: Path) -> list[dict[str, Any]]:
    time.sleep(0.5)  # the worker writes its line after the answer's last byte
    entries = []
    for line in log.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)  # every line: plain text would fail here
            assert isinstance(entry, dict) and {"time", "level", "message"} <= entry.keys(), line
            entries.append(entry)
    return entries


def access(log: Path, request_id: str) -> dict[str, Any]:
    """The one access-log line of the request ``request_id``."""
    found = [e for e in lines(log) if e.get("logger") == "crow.access" and e.get("request_id") == request_id]
    assert len(found) == 1, found
    return found[0]
