"""``python -m crow.start``, the image's command, run on the host as the container would run it.

No base image can be pulled on these machines, so the image's start is tested here: a state
directory the server's user cannot write ends in one line naming it and the uid (no traceback);
a writable one gets a migrated database, the administrator from the environment and a server
whose admin has its styles (collected elsewhere, as the image collects them at build).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import connection

from crow import start
from tests.processes import run, spawn, stop
from tests.server import ROOT, _wait_until_ready, database_url, free_port

START = [sys.executable, "-m", "crow.start"]
IMAGE_UID = 10001  # the image's user (Dockerfile)


@pytest.fixture
def foreign_dir() -> Iterator[Path]:
    """A directory that the process run by ``as_other_user`` may enter and cannot write."""
    with tempfile.TemporaryDirectory(prefix="crow-start-") as name:
        directory = Path(name)
        directory.chmod(0o755)
        if os.getuid() != 0:
            directory.chmod(0o555)
        try:
            yield directory
        finally:
            directory.chmod(0o755)


def as_other_user(command: list[str]) -> list[str]:
    """As root (as CI runs), ``command`` as the image's uid, to whom a root-owned directory is closed.

    setpriv (util-linux), not Popen's ``user=``: the interpreter may live under /root, which only
    setpriv's exec still reaches once the uid changed.
    """
    if os.getuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to run as another uid")
    return [setpriv, f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups", *command]


@pytest.mark.parametrize("where", ["var", "var/missing"])
def test_it_names_the_unwritable_directory_and_the_uid(foreign_dir: Path, where: str) -> None:
    var = foreign_dir / where
    if where == "var":
        var.mkdir()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "crow.settings", "CROW_VAR_DIR": str(var)}
    env.pop("CROW_BLOB_ROOT", None)
    finished = run(as_other_user(START), timeout=60, capture_output=True, cwd=ROOT, env=env)
    stderr = finished.stderr.decode()
    assert finished.returncode == 1, stderr
    uid = IMAGE_UID if os.getuid() == 0 else os.getuid()
    assert re.search(rf"crow: {re.escape(str(foreign_dir))}\S* is not writable by uid {uid} gid \d+", stderr)
    assert "chown -R" in stderr
    assert "Traceback" not in stderr
    assert finished.stdout == b""  # nothing ran: no migration, no server


def test_it_stops_on_a_system_check_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "CROW_VAR_DIR": str(tmp_path / "var"),
        "CROW_BLOB_ROOT": str(tmp_path / "var" / "blobs"),
        # PostgreSQL (never reached: the checks come first) with the public development key.
        "DATABASE_URL": "postgres://crow@127.0.0.1:1/crow",
    }
    env.pop("CROW_SECRET_KEY", None)
    env.pop("CROW_DEBUG", None)
    finished = run(START, timeout=60, capture_output=True, cwd=ROOT, env=env)
    stderr = finished.stderr.decode()
    assert finished.returncode == 1, stderr
    assert "crow.E001" in stderr and "Set CROW_SECRET_KEY" in stderr
    assert "Traceback" not in stderr


def test_its_health_check_fails_when_nothing_answers() -> None:
    env = {**os.environ, "CROW_BIND": f"0.0.0.0:{free_port()}"}  # as the image: asked on loopback
    checked = run([sys.executable, "-m", "crow.healthcheck"], timeout=60, capture_output=True, env=env)
    assert checked.returncode == 1
    assert "crow.healthcheck: no answer" in checked.stderr.decode()


@pytest.mark.django_db(transaction=True)
def test_it_migrates_unless_told_not_to_and_creates_the_admin(
    settings, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    settings.VAR_DIR = tmp_path / "var"
    settings.CROW_BLOB_ROOT = tmp_path / "var" / "blobs"
    settings.CROW_ADMIN_USER, settings.CROW_ADMIN_PASSWORD = "boss", "a long passphrase for boss"
    settings.SECRET_KEY = "a secret key for this test only"  # else crow.E001 on PostgreSQL
    settings.CROW_MIGRATE = False
    start.prepare()
    out = capsys.readouterr().out
    assert "Operations to perform" not in out
    assert "Created the administrator 'boss'" in out
    assert get_user_model().objects.get(username="boss").is_superuser

    settings.CROW_MIGRATE = True
    start.prepare()
    out = capsys.readouterr().out
    assert "No migrations to apply" in out
    assert "'boss' exists already" in out
    assert (tmp_path / "var" / "blobs").is_dir()


@pytest.mark.realserver
@pytest.mark.django_db(transaction=True)
def test_it_serves_with_styles_and_the_admin_from_the_environment(tmp_path: Path) -> None:
    static = tmp_path / "static"  # as the image: collected at build, outside the var volume
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CROW_VAR_DIR": str(tmp_path / "var"),
        "CROW_BLOB_ROOT": str(tmp_path / "var" / "blobs"),
        "CROW_STATIC_ROOT": str(static),
        "CROW_BIND": f"127.0.0.1:{free_port()}",
        "CROW_WORKERS": "1",
        "CROW_THREADS": "2",
        "CROW_AUTH_DISABLED": "0",
        "CROW_WEBHOOK_WORKER": "0",
        "CROW_ADMIN_USER": "boss",
        "CROW_ADMIN_PASSWORD": "a long passphrase for boss",
        "CROW_SECRET_KEY": "a secret key for this test only",
    }
    collected = run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        timeout=120,
        capture_output=True,
        cwd=ROOT,
        env=env,
    )
    assert collected.returncode == 0, collected.stderr.decode()
    log = tmp_path / "start.log"
    with open(log, "wb") as output:
        process = spawn(START, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://{env['CROW_BIND']}"
        _wait_until_ready(process, url, log)
        assert requests.get(f"{url}/v2/", timeout=10).status_code == 401
        css = requests.get(f"{url}/static/admin/css/base.css", timeout=10)
        assert css.status_code == 200, log.read_text()
        assert "text/css" in css.headers["Content-Type"]

        token = requests.get(
            f"{url}/token",
            params={"scope": "repository:boss/app:pull,push"},
            auth=("boss", "a long passphrase for boss"),
            timeout=30,
        )
        assert token.status_code == 200, token.text
        catalog = requests.get(
            f"{url}/v2/_catalog", headers={"Authorization": f"Bearer {token.json()['token']}"}, timeout=10
        )
        assert catalog.status_code == 200

        admin = requests.Session()
        admin.get(f"{url}/admin/login/", timeout=10)
        logged_in = admin.post(
            f"{url}/admin/login/?next=/admin/",
            data={
                "username": "boss",
                "password": "a long passphrase for boss",
                "csrfmiddlewaretoken": admin.cookies["csrftoken"],
            },
            headers={"Referer": f"{url}/admin/login/"},
            timeout=30,
            allow_redirects=False,
        )
        assert logged_in.status_code == 302 and logged_in.headers["Location"] == "/admin/"
        assert admin.get(f"{url}/admin/", timeout=10).status_code == 200

        healthy = run([sys.executable, "-m", "crow.healthcheck"], timeout=60, capture_output=True, env=env)
        assert healthy.returncode == 0, healthy.stderr.decode()
    finally:
        stop(process)
    text = log.read_text()
    assert "Operations to perform" in text  # migrate ran before the server
    assert "Created the administrator 'boss'" in text
    # Where it listens, said once (granian's own "Listening at:" line is left out), on a line of its own.
    where = [line for line in text.splitlines() if env["CROW_BIND"] in line]
    assert len(where) == 1 and where[0].startswith(f"CRoW listening at http://{env['CROW_BIND']}: "), text
