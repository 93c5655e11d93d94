"""``CROW_UPSTREAMS`` and ``manage.py sync_upstreams``: the environment's upstreams, written at start.

The variables are read as settings reads them (``env.upstreams``); a bad one
stops the start naming it. The sync makes the table agree: the environment
wins for the prefixes it names, an upstream it no longer names is disabled and
handed to the admin, and upstreams created in the admin are left alone.
"""

from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from crow import env, start
from registry.mirror.environment import sync
from registry.mirror.models import Upstream

HUB = "https://registry-1.docker.io"


def read(monkeypatch: pytest.MonkeyPatch, value: str, **variables: str) -> dict[str, dict]:
    monkeypatch.setenv("CROW_UPSTREAMS", value)
    for name, setting in variables.items():
        monkeypatch.setenv(name, setting)
    return env.upstreams("CROW_UPSTREAMS", "10m", 0)


def test_it_reads_prefixes_urls_and_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    upstreams = read(monkeypatch, f"docker.io={HUB}/, ghcr.io=https://ghcr.io")
    assert list(upstreams) == ["docker.io", "ghcr.io"]
    assert upstreams["docker.io"] == {
        "url": HUB,
        "username": "",
        "password": "",
        "tag_trust_seconds": 600,
        "repositories": "*",
        "unused_days": None,
    }


def test_each_upstream_has_its_own_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("ghp_secret\n")
    upstreams = read(
        monkeypatch,
        f"docker.io={HUB},ghcr.io=https://ghcr.io",
        CROW_UPSTREAM_DOCKER_IO_USERNAME="alice",
        CROW_UPSTREAM_DOCKER_IO_PASSWORD="dckr_pat_x",
        CROW_UPSTREAM_DOCKER_IO_TAG_TRUST="1h",
        CROW_UPSTREAM_DOCKER_IO_REPOSITORIES="library/*",
        CROW_UPSTREAM_DOCKER_IO_UNUSED_DAYS="30",
        CROW_UPSTREAM_GHCR_IO_USERNAME="bob",
        CROW_UPSTREAM_GHCR_IO_PASSWORD_FILE=str(token),
    )
    hub, ghcr = upstreams["docker.io"], upstreams["ghcr.io"]
    assert (hub["username"], hub["password"], hub["tag_trust_seconds"]) == ("alice", "dckr_pat_x", 3600)
    assert (hub["repositories"], hub["unused_days"]) == ("library/*", 30)
    assert (ghcr["username"], ghcr["password"], ghcr["tag_trust_seconds"]) == ("bob", "ghp_secret", 600)


def test_nothing_configured_is_no_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    assert read(monkeypatch, "") == {}


@pytest.mark.parametrize(
    ("value", "variables", "named"),
    [
        ("docker.io", {}, "CROW_UPSTREAMS"),
        ("docker.io=ftp://hub", {}, "CROW_UPSTREAMS"),
        ("docker.io=https://", {}, "CROW_UPSTREAMS"),
        (f"docker.io={HUB},docker.io=https://mirror.gcr.io", {}, "CROW_UPSTREAMS"),
        (f"a.b={HUB},a-b={HUB}", {}, "CROW_UPSTREAM_A_B_"),
        (
            f"docker.io={HUB}",
            {"CROW_UPSTREAM_DOCKER_IO_USERNAME": "alice"},
            "CROW_UPSTREAM_DOCKER_IO_PASSWORD",
        ),
        (
            f"docker.io={HUB}",
            {"CROW_UPSTREAM_DOCKER_IO_TAG_TRUST": "soon"},
            "CROW_UPSTREAM_DOCKER_IO_TAG_TRUST",
        ),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, variables: dict[str, str], named: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=named):
        read(monkeypatch, value, **variables)


def configured(**upstreams: dict) -> dict[str, dict]:
    """Upstreams as settings holds them, with env.upstreams' defaults."""
    defaults = {
        "username": "",
        "password": "",
        "tag_trust_seconds": 600,
        "repositories": "*",
        "unused_days": None,
    }
    return {prefix.replace("_", "."): {**defaults, **fields} for prefix, fields in upstreams.items()}


@pytest.mark.django_db
def test_the_environment_wins_for_its_prefixes_and_leaves_the_others_alone() -> None:
    Upstream.objects.create(prefix="quay.io", url="https://quay.io", tag_trust_seconds=60)
    Upstream.objects.create(prefix="docker.io", url="https://mirror.gcr.io", enabled=False)
    report = sync(configured(docker_io={"url": HUB, "username": "alice", "password": "pat"}))
    assert (report.created, report.updated, report.released) == ([], ["docker.io"], [])
    hub = Upstream.objects.get(prefix="docker.io")
    assert (hub.url, hub.username, hub.password, hub.enabled, hub.from_environment) == (
        HUB,
        "alice",
        "pat",
        True,
        True,
    )
    quay = Upstream.objects.get(prefix="quay.io")
    assert (quay.url, quay.tag_trust_seconds, quay.from_environment) == ("https://quay.io", 60, False)


@pytest.mark.django_db
def test_a_second_start_changes_nothing_and_a_removed_upstream_goes_to_the_admin_disabled() -> None:
    upstreams = configured(docker_io={"url": HUB}, ghcr_io={"url": "https://ghcr.io"})
    assert sync(upstreams).created == ["docker.io", "ghcr.io"]
    assert sync(upstreams).unchanged == ["docker.io", "ghcr.io"]
    report = sync(configured(docker_io={"url": HUB}))
    assert report.released == ["ghcr.io"]
    ghcr = Upstream.objects.get(prefix="ghcr.io")
    assert (ghcr.enabled, ghcr.from_environment) == (False, False)
    assert "ghcr.io no longer listed: disabled" in report.summary()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("prefix", "fields"), [("Docker.io", {}), ("docker.io", {"repositories": "library/*, /bad"})]
)
def test_a_prefix_or_pattern_the_model_refuses_stops_the_sync(prefix: str, fields: dict) -> None:
    upstreams = {prefix: {**configured(x={"url": HUB})["x"], **fields}}
    with pytest.raises(ImproperlyConfigured, match="CROW_UPSTREAMS"):
        sync(upstreams)
    assert not Upstream.objects.exists()


@pytest.mark.django_db
def test_the_command_says_what_it_did(settings) -> None:
    settings.CROW_UPSTREAMS = configured(docker_io={"url": HUB})
    out = StringIO()
    call_command("sync_upstreams", stdout=out)
    assert out.getvalue().strip() == "Upstreams from CROW_UPSTREAMS: docker.io created"
    settings.CROW_UPSTREAMS = {"-bad": configured(x={"url": HUB})["x"]}
    with pytest.raises(CommandError, match="CROW_UPSTREAMS: -bad"):
        call_command("sync_upstreams")
    settings.CROW_UPSTREAMS = {}
    out = StringIO()
    call_command("sync_upstreams", stdout=out)
    assert "docker.io no longer listed" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_start_writes_them(settings, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    settings.VAR_DIR = tmp_path / "var"
    settings.CROW_BLOB_ROOT = tmp_path / "var" / "blobs"
    settings.SECRET_KEY = "a secret key for this test only"  # else crow.E001 on PostgreSQL
    settings.CROW_MIGRATE = False
    settings.CROW_UPSTREAMS = configured(ghcr_io={"url": "https://ghcr.io"})
    start.prepare()
    assert "Upstreams from CROW_UPSTREAMS: ghcr.io created" in capsys.readouterr().out
    assert Upstream.objects.get().from_environment
