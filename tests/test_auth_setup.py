"""Setting the access control up: the signing key, the system checks, the first admin, the admin pages."""

import importlib.util
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from registry.auth import checks, keys
from registry.auth.accounts import ensure_admin
from registry.auth.models import Grant, Robot
from tests import access

pytestmark = pytest.mark.auth


@pytest.fixture(autouse=True)
def secured(settings, tmp_path) -> None:
    access.secure(settings, tmp_path)


# --- The signing key -----------------------------------------------------------------


def test_it_generates_a_private_key_file_once(settings) -> None:
    path = settings.CROW_TOKEN_KEY_PATH

    first = keys.signing_key()

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.parse(path.read_text()).private_numbers() == first.private.private_numbers()
    keys._load.cache_clear()
    assert keys.signing_key().kid == first.kid


def test_it_agrees_on_one_key_when_generated_concurrently(settings) -> None:
    path = settings.CROW_TOKEN_KEY_PATH

    with ThreadPoolExecutor(8) as pool:
        pems = set(pool.map(lambda _: keys._generated(path), range(16)))

    assert len(pems) == 1
    assert [p.name for p in settings.CROW_TOKEN_KEY_PATH.parent.iterdir()] == ["token-key.pem"]


def test_it_uses_the_configured_key(settings) -> None:
    settings.CROW_TOKEN_KEY = keys.generate_pem()

    assert (
        keys.signing_key().private.private_numbers() == keys.parse(settings.CROW_TOKEN_KEY).private_numbers()
    )
    assert not settings.CROW_TOKEN_KEY_PATH.exists()


@pytest.mark.parametrize("pem", ["not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"])
def test_it_refuses_a_key_that_is_not_pem(pem: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        keys.parse(pem)


def test_it_refuses_a_key_of_another_kind() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    with pytest.raises(ImproperlyConfigured, match="P-256"):
        keys.parse(p384.decode())


# --- System checks ----------------------------------------------------------------------


def test_it_warns_loudly_when_auth_is_disabled(settings) -> None:
    settings.CROW_AUTH_DISABLED = True

    (warning,) = checks.check_auth_disabled()

    assert warning.id == "crow_auth.W001"
    assert "DISABLED" in warning.msg


def test_it_says_nothing_when_auth_is_on() -> None:
    assert checks.check_auth_disabled() == []
    assert checks.check_token_key() == []


def test_it_stops_on_a_broken_token_key(settings) -> None:
    settings.CROW_TOKEN_KEY = "not a key"

    (error,) = checks.check_token_key()

    assert error.id == "crow_auth.E001"


def test_it_stops_when_redis_is_configured_without_its_client(settings, monkeypatch) -> None:
    settings.CROW_REDIS_URL = "redis://127.0.0.1:6379/0"
    # The package is pinned in requirements.txt; its absence is what an incomplete install looks like.
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real_find_spec(name, *a)
    )

    (error,) = checks.check_redis()

    assert error.id == "crow_auth.E002"
    settings.CROW_REDIS_URL = ""
    assert checks.check_redis() == []


# --- The first administrator ------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_the_admin_once() -> None:
    assert ensure_admin("root", "pw-1").created
    assert not ensure_admin("root", "pw-2").created

    root = get_user_model().objects.get(username="root")
    assert root.is_superuser and root.check_password("pw-1")


@pytest.mark.django_db
def test_the_command_creates_the_admin_from_settings(settings) -> None:
    settings.CROW_ADMIN_USER, settings.CROW_ADMIN_PASSWORD = "root", "pw"
    out = StringIO()

    call_command("ensure_admin", stdout=out)

    assert "Created" in out.getvalue()
    assert get_user_model().objects.get(username="root").is_superuser


@pytest.mark.django_db
def test_the_command_says_how_to_create_an_admin_without_settings(settings) -> None:
    settings.CROW_ADMIN_USER = ""
    out = StringIO()

    call_command("ensure_admin", stdout=out)

    assert "createsuperuser" in out.getvalue()
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_the_command_fails_without_a_password(settings) -> None:
    settings.CROW_ADMIN_USER, settings.CROW_ADMIN_PASSWORD = "root", ""

    with pytest.raises(CommandError):
        call_command("ensure_admin")


# --- The admin pages --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_creates_a_robot_and_shows_its_secret_once(admin_client) -> None:
    owner = access.user("owner")
    response = admin_client.post(
        "/admin/registry_auth/robot/add/",
        {"name": "ci", "owner": owner.pk, "patterns": "team/*", "may_pull": "on", "description": ""},
        follow=True,
    )

    robot = Robot.objects.get(name="ci")
    page = response.content.decode()
    secret = page.split("with the secret ")[1].split(" ")[0]
    assert secret.startswith("crow_") and robot.secret_hash not in page
    assert robot.actions == {"pull"}
    assert "crow_" not in admin_client.get(f"/admin/registry_auth/robot/{robot.pk}/change/").content.decode()


@pytest.mark.django_db
def test_the_admin_lists_and_deletes_grants(admin_client) -> None:
    grant = access.grant("team/*", "pull,push", to=access.user("bob"))

    assert "team/*" in admin_client.get("/admin/registry_auth/grant/").content.decode()
    admin_client.post(f"/admin/registry_auth/grant/{grant.pk}/delete/", {"post": "yes"})

    assert not Grant.objects.exists()


@pytest.mark.django_db
def test_the_admin_refuses_a_grant_to_a_bad_pattern(admin_client) -> None:
    bob = access.user("bob")
    response = admin_client.post(
        "/admin/registry_auth/grant/add/", {"pattern": "Team/App", "user": bob.pk, "may_pull": "on"}
    )

    assert response.status_code == 200  # the form again, with the error
    assert not Grant.objects.exists()
