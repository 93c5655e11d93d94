"""HTTPS served directly: ``CROW_TLS_CERT`` and ``CROW_TLS_KEY``, checked by clients that verify.

A test authority signs a certificate for 127.0.0.1; skopeo trusts the authority (``--cert-dir``,
TLS verification on) and pushes and pulls through HTTPS, its login included (the token realm
names https). A client without the authority is refused by its own verification.
"""

import sys
from pathlib import Path

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from crow import serve
from tests import certificates, ocilayout, processes
from tests.server import Server
from tests.skopeo import Skopeo

HEALTHCHECK = [sys.executable, "-m", "crow.healthcheck"]  # the image's HEALTHCHECK


@pytest.fixture
def tls(tmp_path: Path) -> certificates.Certificates:
    return certificates.make(tmp_path / "tls")


@pytest.fixture
def server_env(tls: certificates.Certificates) -> dict[str, str]:
    return {"CROW_TLS_CERT": str(tls.cert), "CROW_TLS_KEY": str(tls.key)}


def test_it_pushes_and_pulls_with_skopeo_verifying_the_certificate(
    skopeo: Skopeo, registry_server: Server, tls: certificates.Certificates, tmp_path: Path
) -> None:
    assert registry_server.url.startswith("https://")
    digest = ocilayout.write_image(tmp_path / "in", "v1")
    reference = f"docker://{registry_server.host}/team/app:v1"
    trust = str(tls.cert_dir)

    skopeo.run(
        "copy",
        f"--dest-creds={skopeo.creds}",
        "--dest-tls-verify=true",
        f"--dest-cert-dir={trust}",
        f"oci:{tmp_path / 'in'}:v1",
        reference,
    )
    raw = skopeo.run(
        "inspect", "--raw", f"--creds={skopeo.creds}", "--tls-verify=true", f"--cert-dir={trust}", reference
    )
    assert ocilayout.sha256(raw) == digest
    skopeo.run(
        "copy",
        f"--src-creds={skopeo.creds}",
        "--src-tls-verify=true",
        f"--src-cert-dir={trust}",
        reference,
        f"oci:{tmp_path / 'out'}:v1",
    )
    assert ocilayout.tagged(tmp_path / "out", "v1") == digest
    assert ocilayout.blobs(tmp_path / "out") == ocilayout.blobs(tmp_path / "in")


def test_it_is_refused_by_clients_that_do_not_trust_the_authority(
    skopeo: Skopeo, registry_server: Server, tls: certificates.Certificates, tmp_path: Path
) -> None:
    inspected = skopeo_failure(
        skopeo, "inspect", "--raw", "--tls-verify=true", f"docker://{registry_server.host}/team/app:v1"
    )
    assert "certificate signed by unknown authority" in inspected

    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{registry_server.url}/v2/", timeout=10)
    challenge = requests.get(f"{registry_server.url}/v2/", timeout=10, verify=tls.ca)
    assert challenge.status_code == 401
    assert f'realm="https://{registry_server.host}/token"' in challenge.headers["WWW-Authenticate"]


def skopeo_failure(skopeo: Skopeo, *args: str) -> str:
    """What skopeo says when ``args`` fail (the test fails if they succeed)."""
    result = processes.run([skopeo.path, "--insecure-policy", *args], capture_output=True, timeout=60)
    assert result.returncode != 0, result.stdout.decode()
    return result.stderr.decode()


def test_its_health_check_asks_over_https(registry_server: Server) -> None:
    checked = processes.run(HEALTHCHECK, capture_output=True, timeout=60, env=registry_server.env)
    assert checked.returncode == 0, checked.stderr.decode()


def test_it_refuses_a_certificate_without_its_key(
    monkeypatch: pytest.MonkeyPatch, tls: certificates.Certificates
) -> None:
    monkeypatch.setenv("CROW_TLS_CERT", str(tls.cert))
    monkeypatch.delenv("CROW_TLS_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="CROW_TLS_CERT and CROW_TLS_KEY go together"):
        serve.tls()


def test_it_refuses_a_key_that_does_not_match(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first, second = certificates.make(tmp_path / "a"), certificates.make(tmp_path / "b")
    monkeypatch.setenv("CROW_TLS_CERT", str(first.cert))
    monkeypatch.setenv("CROW_TLS_KEY", str(second.key))
    with pytest.raises(ImproperlyConfigured, match="cannot be loaded"):
        serve.tls()


def test_it_serves_plain_http_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROW_TLS_CERT", raising=False)
    monkeypatch.delenv("CROW_TLS_KEY", raising=False)
    assert serve.tls() is None
    assert serve.settings().scheme == "http"
