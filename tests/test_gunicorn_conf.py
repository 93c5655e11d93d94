"""``crow/gunicorn.conf.py``: a socket per worker, and no silent sharing of an address."""

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.server import ROOT, free_port, running

TIMEOUT = 30


def test_a_second_server_on_a_taken_address_refuses_to_start(tmp_path: Path, blob_root: Path) -> None:
    # Each worker binds with SO_REUSEPORT, which would let a second server share the port and take
    # half of the first one's connections; it must fail as a plain bind does.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crow.settings",
        "CROW_BLOB_ROOT": str(blob_root),
        "CROW_VAR_DIR": str(tmp_path / "var"),
        "CROW_BIND": f"127.0.0.1:{free_port()}",
        "CROW_WORKERS": "2",
        "CROW_AUTH_DISABLED": "1",
    }
    with running(env, tmp_path / "first.log") as url:
        second = subprocess.run(
            [str(Path(sys.executable).parent / "gunicorn"), "--config", "crow/gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert second.returncode != 0
        assert f"cannot listen at {env['CROW_BIND']}: Address already in use" in second.stderr
        # The first server still answers every connection (none went to the second one's workers).
        for _ in range(6):
            assert requests.get(f"{url}/v2/", timeout=TIMEOUT).status_code == 200
    assert f"Listening at {env['CROW_BIND']}" in (tmp_path / "first.log").read_text()
