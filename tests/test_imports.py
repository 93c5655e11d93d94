"""A server process imports what its configuration uses and nothing else (issue 17: fewer resources idle).

Each test imports ``crow.asgi`` in a fresh interpreter, as a server worker
does, with the test's settings; it answers requests through the WSGI
application (no server, no database: these requests need neither), then
prints the answers and which of the large optional packages are imported.
``bench/footprint.py`` measures what they cost.
"""

import json
import os
import sys
from pathlib import Path

from tests import processes
from tests.server import ROOT

WATCHED = ("boto3", "botocore", "rest_framework.views", "drf_spectacular.views", "jwt", "cryptography")
WORKER = """
import io, json, sys
import crow.asgi
from crow.wsgi import application

answers = []
for path in sys.argv[1:]:
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "localhost",
        "SERVER_PORT": "5000", "HTTP_HOST": "localhost:5000", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
    }
    started = {}
    start = lambda status, headers: started.update(status=status, headers=headers)  # noqa: E731
    body = b"".join(application(environ, start))
    answers.append({"status": started["status"], "headers": dict(started["headers"]), "body": body.decode()})
print(json.dumps({"answers": answers, "imported": sorted(name for name in %r if name in sys.modules)}))
"""
COMMANDS = """
import json, sys
import django

django.setup()
from registry.management.commands import backup, restore
print(json.dumps({"imported": sorted(name for name in %r if name in sys.modules)}))
"""


def _worker(tmp_path: Path, *paths: str, **settings: str) -> dict:
    return _run(tmp_path, WORKER % (WATCHED,), *paths, **settings)


def _run(tmp_path: Path, code: str, *arguments: str, **settings: str) -> dict:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CROW_") and name != "DATABASE_URL"
    }
    env = {
        **environ,
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "CROW_VAR_DIR": str(tmp_path / "var"),
        "CROW_LOG_LEVEL": "ERROR",
        **settings,
    }
    done = processes.run(
        [sys.executable, "-c", code, *arguments],
        cwd=ROOT,
        env=env,
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_it_imports_no_s3_client_on_the_filesystem_store(tmp_path: Path) -> None:
    got = _worker(tmp_path, "/v2/", CROW_STORAGE="filesystem", CROW_AUTH_DISABLED="1")

    assert got["answers"][0]["status"] == "200 OK"
    assert "boto3" not in got["imported"]
    assert "botocore" not in got["imported"]


def test_it_imports_no_s3_client_for_backups_to_a_directory(tmp_path: Path) -> None:
    got = _run(tmp_path, COMMANDS % (WATCHED,), CROW_STORAGE="filesystem")

    assert "boto3" not in got["imported"]
    assert "botocore" not in got["imported"]


def test_it_imports_the_s3_client_at_start_up_on_s3(tmp_path: Path) -> None:
    # Then no worker's first request pays for it, and a server that preloads shares it between workers.
    s3 = {
        "CROW_STORAGE": "s3",
        "CROW_S3_BUCKET": "imports",
        "CROW_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "CROW_S3_ACCESS_KEY_ID": "imports",
        "CROW_S3_SECRET_ACCESS_KEY": "imports",
    }

    got = _worker(tmp_path, **s3)

    assert {"boto3", "botocore"} <= set(got["imported"])


def test_it_imports_the_management_api_with_its_first_request(tmp_path: Path) -> None:
    # A registry request with authentication on: the 401 challenge names the token service.
    got = _worker(tmp_path, "/v2/", CROW_STORAGE="filesystem")
    challenge = got["answers"][0]

    assert challenge["status"].startswith("401")
    assert 'realm="http://localhost:5000/token"' in challenge["headers"]["WWW-Authenticate"]
    assert "rest_framework.views" not in got["imported"]
    assert "drf_spectacular.views" not in got["imported"]

    got = _worker(tmp_path, "/api/", CROW_STORAGE="filesystem")

    assert got["answers"][0]["status"].startswith("401")  # DRF's answer: the API is there
    assert "rest_framework.views" in got["imported"]


def test_it_imports_the_token_code_only_with_authentication_on(tmp_path: Path) -> None:
    open_registry = _worker(tmp_path, "/v2/", CROW_AUTH_DISABLED="1")
    with_logins = _worker(tmp_path, CROW_AUTH_DISABLED="0")

    assert open_registry["answers"][0]["status"] == "200 OK"
    assert "jwt" not in open_registry["imported"]
    assert "cryptography" not in open_registry["imported"]
    assert {"jwt", "cryptography"} <= set(with_logins["imported"])
