"""Read-only mode on a running server: switched from outside (``manage.py read_only`` writes the row
the server reads), it refuses skopeo's push within seconds and keeps serving pulls; forced by
``CROW_READ_ONLY=1`` in the server's environment, it refuses from the start.
"""

import time
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.core.management import call_command

from registry.maintenance import readonly
from tests import ocilayout, processes
from tests.server import Server
from tests.skopeo import TIMEOUT, Skopeo

pytestmark = pytest.mark.realserver

# How long a server may take to obey the switch: its cache of the row, and then some.
OBEYED_WITHIN = readonly.REFRESH + 2.0


@pytest.fixture
def server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return dict(getattr(request, "param", {}))


def start_upload(server: Server) -> requests.Response:
    headers = {"Authorization": f"Bearer {server.token('team/app')}"}
    return requests.post(f"{server.url}/v2/team/app/blobs/uploads/", headers=headers, timeout=30)


def switch(server: Server, action: str) -> float:
    """``manage.py read_only on|off``; seconds until the server refuses (or accepts again) an upload.

    One worker obeying is seen first; every process has once ``REFRESH`` seconds have passed since
    the switch (each read the row at most that long ago), so this returns no earlier than that.
    """
    switched = time.monotonic()
    call_command("read_only", action, stdout=StringIO())
    refused = action == "on"
    while (waited := time.monotonic() - switched) < OBEYED_WITHIN:
        if (start_upload(server).status_code == 405) == refused:
            time.sleep(max(0.0, switched + readonly.REFRESH - time.monotonic()))
            return waited
        time.sleep(0.05)
    pytest.fail(f"the server did not {'refuse' if refused else 'accept'} a push within {OBEYED_WITHIN} s")


def skopeo_push_fails(skopeo: Skopeo, layout: Path, reference: str) -> str:
    result = processes.run(
        [skopeo.path, "--insecure-policy", "copy", f"--dest-creds={skopeo.creds}", "--dest-tls-verify=false"]
        + [f"oci:{layout}:v2", f"docker://{reference}"],
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert result.returncode != 0
    return result.stderr.decode()


def test_it_refuses_pushes_within_seconds_of_the_switch_and_keeps_serving_pulls(
    skopeo: Skopeo, registry_server: Server, tmp_path: Path
) -> None:
    digest = ocilayout.write_image(tmp_path / "in", "v1")
    ocilayout.write_image(tmp_path / "next", "v2")
    skopeo.push(tmp_path / "in", "v1", f"{registry_server.host}/team/app:v1")

    switch(registry_server, "on")

    stderr = skopeo_push_fails(skopeo, tmp_path / "next", f"{registry_server.host}/team/app:v2")
    assert "read-only for maintenance" in stderr, stderr
    skopeo.pull(f"{registry_server.host}/team/app:v1", tmp_path / "out", "v1")
    assert ocilayout.tagged(tmp_path / "out", "v1") == digest
    ready = requests.get(f"{registry_server.url}/readyz", timeout=30)
    assert (ready.status_code, ready.json()["read_only"]) == (200, True)
    assert "crow_read_only 1.0" in requests.get(f"{registry_server.url}/metrics", timeout=30).text

    switch(registry_server, "off")
    skopeo.push(tmp_path / "next", "v2", f"{registry_server.host}/team/app:v2")


@pytest.mark.parametrize("server_env", [{"CROW_READ_ONLY": "1"}], indirect=True)
def test_it_is_read_only_from_the_start_when_the_environment_says_so(registry_server: Server) -> None:
    refused = start_upload(registry_server)

    assert refused.status_code == 405
    assert refused.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert "read-only for maintenance" in refused.json()["errors"][0]["message"]
    assert requests.get(f"{registry_server.url}/readyz", timeout=30).json()["read_only"] is True
