"""Commands run against a database that was never migrated say to run ``migrate``, not a traceback."""

import os
import sys
from pathlib import Path

import pytest

from registry.management.migrations_state import unapplied
from tests.processes import run

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["gc", "--dry-run"],
        ["restore", "/nonexistent-backup"],
        ["backup", "/tmp/never-written"],
        ["verify"],
        ["purge_uploads"],
    ],
)
def test_it_says_to_migrate_first(tmp_path: Path, command: list[str]) -> None:
    env = {
        **os.environ,
        "CROW_VAR_DIR": str(tmp_path / "var"),
        "CROW_SILENCED_SYSTEM_CHECKS": "crow.W001,crow.W002",
    }
    env.pop("DATABASE_URL", None)  # a fresh SQLite file: no table at all
    finished = run(
        [sys.executable, "manage.py", *command], timeout=60, capture_output=True, cwd=ROOT, env=env
    )
    stderr = finished.stderr.decode()
    assert finished.returncode == 1, stderr
    assert f"{command[0]}: the database lacks" in stderr
    assert "run `python manage.py migrate` first" in stderr
    assert "Traceback" not in stderr
    assert not Path("/tmp/never-written").exists()


@pytest.mark.django_db
def test_the_test_database_lacks_nothing() -> None:
    assert unapplied() == []
