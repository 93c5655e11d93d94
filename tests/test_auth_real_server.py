"""Real clients log in to a real server: skopeo with a user's password, with a robot's secret, and not at all.

skopeo follows the server's challenge to ``/token`` like any registry client:
``skopeo login`` checks the password there, pushes and pulls carry tokens.
"""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from registry.auth import keys, robots
from registry.auth.models import PULL, PUSH, PublicPattern
from tests import ocilayout, processes
from tests.server import Server
from tests.skopeo import Skopeo

pytestmark = pytest.mark.auth

PASSWORD = "a real password for a real server"


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    """Authentication on whatever the environment says, with a key file of the test's own."""
    key = tmp_path / "token-key.pem"
    key.write_text(keys.generate_pem())
    return {"CROW_AUTH_DISABLED": "0", "CROW_ANONYMOUS_PULL": "1", "CROW_TOKEN_KEY_FILE": str(key)}


@pytest.fixture
def alice(registry_server: Server):
    return get_user_model().objects.create_user("alice", password=PASSWORD)


def fails(skopeo_path: str, *args: str) -> str:
    result = processes.run([skopeo_path, "--insecure-policy", *args], capture_output=True, timeout=120)
    assert result.returncode != 0, f"skopeo {' '.join(args)} succeeded"
    return result.stderr.decode()


def round_trip(skopeo: Skopeo, host: str, name: str, tmp_path: Path, *options: str) -> None:
    digest = ocilayout.write_image(tmp_path / "in", "v1")
    reference = f"{host}/{name}:v1"

    skopeo.push(tmp_path / "in", "v1", reference, *options)
    skopeo.pull(reference, tmp_path / "out", "v1", *options)

    assert ocilayout.tagged(tmp_path / "out", "v1") == digest
    assert ocilayout.blobs(tmp_path / "out") == ocilayout.blobs(tmp_path / "in")


def test_it_round_trips_after_skopeo_login(
    registry_server: Server, skopeo_path: str, alice, tmp_path: Path
) -> None:
    authfile = str(tmp_path / "auth.json")
    skopeo = Skopeo(skopeo_path)
    login = ("--authfile", authfile, "--tls-verify=false", registry_server.host)
    fails(skopeo_path, "login", "-u", "alice", "-p", "wrong", *login)

    skopeo.run("login", "-u", "alice", "-p", PASSWORD, *login)

    round_trip(skopeo, registry_server.host, "alice/app", tmp_path, "--authfile", authfile)


def test_it_round_trips_with_a_robot_token(
    registry_server: Server, skopeo_path: str, alice, tmp_path: Path
) -> None:
    robot, secret = robots.create(alice, "deploy", "alice/*", frozenset({PULL, PUSH}))

    round_trip(
        Skopeo(skopeo_path, creds=f"{robot.username}:{secret}"), registry_server.host, "alice/ci", tmp_path
    )

    denied = fails(
        skopeo_path,
        "copy",
        f"--dest-creds={robot.username}:{secret}",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'in'}:v1",
        f"docker://{registry_server.host}/team/app:v1",
    )
    assert "403 (Forbidden)" in denied


def test_it_lets_anyone_pull_a_public_repository_without_login(
    registry_server: Server, skopeo_path: str, alice, tmp_path: Path
) -> None:
    digest = ocilayout.write_image(tmp_path / "in", "v1")
    reference = f"{registry_server.host}/alice/public:v1"
    Skopeo(skopeo_path, creds=f"alice:{PASSWORD}").push(tmp_path / "in", "v1", reference)
    anonymous = Skopeo(skopeo_path)
    no_creds = (
        "--src-no-creds",
        "--src-tls-verify=false",
        f"docker://{reference}",
        f"oci:{tmp_path / 'out'}:v1",
    )
    fails(skopeo_path, "copy", *no_creds)

    PublicPattern.objects.create(pattern="alice/public")
    anonymous.run("copy", *no_creds)

    assert ocilayout.tagged(tmp_path / "out", "v1") == digest
    fails(
        skopeo_path,
        "copy",
        "--dest-no-creds",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'in'}:v1",
        f"docker://{reference}",
    )
