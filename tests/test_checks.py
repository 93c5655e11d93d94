"""The system checks of ``registry.checks``, one test per check and outcome."""

import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from registry import checks
from tests.processes import run

POSTGRESQL = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"
STRONG_KEY = "a-long-random-production-secret-key-0123456789-abcdefghij"


def databases(engine: str) -> dict[str, Any]:
    # Only the checks read this copy: the open test connection is untouched.
    return {"default": {**settings.DATABASES["default"], "ENGINE": engine}}


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def test_it_refuses_the_development_secret_key_in_production() -> None:
    with override_settings(DEBUG=False, DATABASES=databases(POSTGRESQL)):
        assert ids(checks.check_secret_key()) == ["crow.E001"]


def test_it_only_warns_of_the_development_secret_key_on_the_embedded_database() -> None:
    with override_settings(DEBUG=False, DATABASES=databases(SQLITE)):
        assert ids(checks.check_secret_key()) == ["crow.W001"]


def test_it_accepts_a_real_secret_key() -> None:
    with override_settings(DEBUG=False, SECRET_KEY=STRONG_KEY, DATABASES=databases(POSTGRESQL)):
        assert checks.check_secret_key() == []


def test_it_accepts_the_development_secret_key_in_debug() -> None:
    with override_settings(DEBUG=True, DATABASES=databases(POSTGRESQL)):
        assert checks.check_secret_key() == []


def test_it_creates_a_missing_blob_root(tmp_path: Path) -> None:
    root = tmp_path / "new" / "blobs"
    with override_settings(CROW_STORAGE="filesystem", CROW_BLOB_ROOT=root):
        assert checks.check_blob_root() == []
    assert root.is_dir()


def test_it_refuses_a_blob_root_that_cannot_be_created(tmp_path: Path) -> None:
    # Under a regular file: no directory can be made there, not even by root.
    (tmp_path / "file").write_bytes(b"")
    with override_settings(CROW_STORAGE="filesystem", CROW_BLOB_ROOT=tmp_path / "file" / "blobs"):
        assert ids(checks.check_blob_root()) == ["crow.E002"]


def test_it_ignores_the_blob_root_for_s3_storage(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with override_settings(CROW_STORAGE="s3", CROW_BLOB_ROOT=tmp_path / "file" / "blobs"):
        assert checks.check_blob_root() == []


def test_it_refuses_a_default_page_larger_than_the_largest_page() -> None:
    with override_settings(CROW_PAGE_SIZE=100, CROW_MAX_PAGE_SIZE=50):
        assert ids(checks.check_page_sizes()) == ["crow.E003"]


def test_it_accepts_equal_page_sizes() -> None:
    with override_settings(CROW_PAGE_SIZE=100, CROW_MAX_PAGE_SIZE=100):
        assert checks.check_page_sizes() == []


def test_it_warns_of_sqlite_in_production() -> None:
    with override_settings(DEBUG=False, DATABASES=databases(SQLITE)):
        assert ids(checks.check_production_database()) == ["crow.W002"]


def test_it_accepts_sqlite_in_debug() -> None:
    with override_settings(DEBUG=True, DATABASES=databases(SQLITE)):
        assert checks.check_production_database() == []


def test_it_accepts_postgresql_in_production() -> None:
    with override_settings(DEBUG=False, DATABASES=databases(POSTGRESQL)):
        assert checks.check_production_database() == []


def test_it_refuses_s3_storage_without_a_bucket() -> None:
    with override_settings(CROW_STORAGE="s3", CROW_S3_BUCKET=""):
        assert ids(checks.check_s3_bucket()) == ["crow.E004"]


def test_it_accepts_s3_storage_with_a_bucket() -> None:
    with override_settings(CROW_STORAGE="s3", CROW_S3_BUCKET="blobs"):
        assert checks.check_s3_bucket() == []


def test_it_refuses_an_upstream_prefix_outside_the_name_grammar() -> None:
    upstream = {"url": "https://ghcr.io", "repositories": "*"}
    with override_settings(CROW_UPSTREAMS={"GHCR.io": upstream}):
        messages = checks.check_upstreams()
    assert ids(messages) == ["crow.E005"] and "CROW_UPSTREAMS: GHCR.io" in messages[0].msg


def test_it_accepts_valid_upstreams() -> None:
    upstream = {"url": "https://ghcr.io", "repositories": "owner/*"}
    with override_settings(CROW_UPSTREAMS={"ghcr.io": upstream}):
        assert checks.check_upstreams() == []


def test_it_warns_of_a_client_address_header_without_trusted_proxies() -> None:
    # Believed from anyone before: now it would be ignored, and every client would have the proxy's address.
    with override_settings(CROW_CLIENT_ADDRESS_HEADER="X-Forwarded-For", CROW_TRUSTED_PROXIES=()):
        messages = checks.check_client_address_header()
    assert ids(messages) == ["crow.W003"] and "CROW_TRUSTED_PROXIES" in messages[0].hint


def test_it_accepts_a_client_address_header_from_trusted_proxies() -> None:
    proxy = (ipaddress.ip_network("10.0.0.0/8"),)
    with override_settings(CROW_CLIENT_ADDRESS_HEADER="X-Real-IP", CROW_TRUSTED_PROXIES=proxy):
        assert checks.check_client_address_header() == []
    with override_settings(CROW_CLIENT_ADDRESS_HEADER="", CROW_TRUSTED_PROXIES=()):
        assert checks.check_client_address_header() == []


def test_it_registers_the_checks() -> None:
    from django.core import checks as django_checks

    registered = set(django_checks.registry.registry.get_checks())
    assert {
        checks.check_secret_key,
        checks.check_blob_root,
        checks.check_page_sizes,
        checks.check_production_database,
        checks.check_s3_bucket,
        checks.check_upstreams,
        checks.check_client_address_header,
    } <= registered


def command_output(tmp_path: Path, **variables: str) -> str:
    """What ``manage.py ensure_admin`` (no administrator configured: no database needed) prints."""
    env = {**os.environ, "CROW_VAR_DIR": str(tmp_path / "var"), "CROW_AUTH_DISABLED": "1", **variables}
    for name in ("DATABASE_URL", "CROW_SECRET_KEY", "CROW_ADMIN_USER", "CROW_SILENCED_SYSTEM_CHECKS"):
        if name not in variables:
            env.pop(name, None)
    root = Path(__file__).resolve().parent.parent
    finished = run(
        [sys.executable, "manage.py", "ensure_admin"], timeout=60, capture_output=True, cwd=root, env=env
    )
    assert finished.returncode == 0, finished.stderr.decode()
    return finished.stdout.decode() + finished.stderr.decode()


def test_a_command_prints_each_warning_once(tmp_path: Path) -> None:
    output = command_output(tmp_path)
    assert output.count("crow_auth.W001") == 1
    assert output.count("anyone") == 1  # the check's message, not a log line besides it
    assert output.count("crow.W002") == 1


def test_warnings_are_silenced_by_id_from_the_environment(tmp_path: Path) -> None:
    output = command_output(tmp_path, CROW_SILENCED_SYSTEM_CHECKS="crow_auth.W001, crow.W001,crow.W002")
    assert "W00" not in output
    assert "System check identified" not in output
