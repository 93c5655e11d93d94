"""The token service, and the tokens that the registry refuses.

A refused token gets the same answer as no credentials: 401 UNAUTHORIZED with
the challenge (``error="invalid_token"``), whatever is wrong with it.
"""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.test import Client

from registry.auth import keys, tokens
from tests import access, oci

pytestmark = [pytest.mark.auth, pytest.mark.django_db]

NAME = "team/app"
IMAGE = oci.image("tokens")


@pytest.fixture(autouse=True)
def world(settings, tmp_path, client: Client) -> None:
    settings.CROW_AUTH_DISABLED = True
    oci.push_image(client, NAME, IMAGE, "v1")
    access.secure(settings, tmp_path)
    reader, writer = access.user("reader"), access.user("writer")
    access.grant("team/*", "pull", to=reader)
    access.grant(NAME, "pull,push", to=writer)


def claims(**changes) -> dict:
    now = datetime.now(UTC)
    base = {
        "iss": "crow",
        "sub": "writer",
        "aud": "crow-test",
        "exp": now + timedelta(minutes=5),
        "nbf": now,
        "iat": now,
        "jti": "j1",
        "access": [{"type": "repository", "name": NAME, "actions": ["pull", "push"]}],
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def signed(payload: dict, key=None, algorithm: str = "ES256") -> str:
    return jwt.encode(payload, key or keys.signing_key().private, algorithm=algorithm)


def pull(client: Client, token: str, name: str = NAME):
    return client.get(f"/v2/{name}/tags/list", headers=access.bearer(token))


def assert_refused(response) -> None:
    oci.assert_error(response, 401, "UNAUTHORIZED")
    assert access.challenge(response)["error"] == "invalid_token"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- What the token service issues -------------------------------------------------


def test_it_issues_a_token_in_the_docker_format(client: Client) -> None:
    response = client.get(
        "/token", {"service": "crow-test", "scope": f"repository:{NAME}:pull"}, headers=access.basic("reader")
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256" and header["kid"]
    payload = jwt.decode(body["token"], options={"verify_signature": False})
    assert payload["sub"] == "reader"
    assert payload["aud"] == "crow-test"
    assert payload["access"] == [{"type": "repository", "name": NAME, "actions": ["pull"]}]
    assert pull(client, body["token"]).status_code == 200


def test_it_grants_only_what_the_user_may_do_whatever_was_asked(client: Client) -> None:
    token = access.token(client, f"repository:{NAME}:pull,push,delete,*", headers=access.basic("reader"))

    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["access"] == [{"type": "repository", "name": NAME, "actions": ["pull"]}]
    response = client.post(f"/v2/{NAME}/blobs/uploads/", headers=access.bearer(token))
    oci.assert_error(response, 403, "DENIED")


def test_it_takes_several_scopes(client: Client) -> None:
    response = client.get(
        f"/token?service=crow-test&scope=repository:{NAME}:pull,push&scope=repository:team/other:pull"
        "&scope=registry:catalog:*&scope=nonsense",
        headers=access.basic("writer"),
    )

    payload = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert payload["access"] == [
        {"type": "repository", "name": NAME, "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]


def test_it_gives_anonymous_clients_public_pulls_only(client: Client) -> None:
    access.public("team/*")
    token = access.token(client, f"repository:{NAME}:pull,push")

    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["sub"] == ""
    assert payload["access"] == [{"type": "repository", "name": NAME, "actions": ["pull"]}]
    assert pull(client, token).status_code == 200
    response = client.post(f"/v2/{NAME}/blobs/uploads/", headers=access.bearer(token))
    oci.assert_error(response, 401, "UNAUTHORIZED")


def test_it_answers_the_oauth2_password_grant(client: Client) -> None:
    response = client.post(
        "/token",
        {
            "grant_type": "password",
            "username": "writer",
            "password": access.PASSWORD,
            "service": "crow-test",
            "scope": f"repository:{NAME}:pull,push",
            "client_id": "oras",
        },
    )

    assert response.status_code == 200
    assert pull(client, response.json()["access_token"]).status_code == 200


def test_it_refuses_other_grant_types(client: Client) -> None:
    response = client.post("/token", {"grant_type": "refresh_token", "refresh_token": "x"})

    oci.assert_error(response, 400, "UNSUPPORTED")


def test_it_refuses_a_wrong_password(client: Client) -> None:
    response = client.get("/token", {"service": "crow-test"}, headers=access.basic("writer", "wrong"))

    oci.assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"].startswith("Basic ")


def test_it_refuses_another_service(client: Client) -> None:
    response = client.get("/token", {"service": "elsewhere"}, headers=access.basic("writer"))

    oci.assert_error(response, 400, "UNSUPPORTED")


# --- Tokens the registry refuses ------------------------------------------------------


def test_it_accepts_a_well_formed_token(client: Client) -> None:
    assert pull(client, signed(claims())).status_code == 200


def test_it_refuses_an_expired_token(client: Client) -> None:
    past = datetime.now(UTC) - timedelta(minutes=10)
    token = signed(claims(iat=past, nbf=past, exp=past + timedelta(minutes=5)))

    assert_refused(pull(client, token))


def test_it_refuses_a_token_not_valid_yet(client: Client) -> None:
    assert_refused(pull(client, signed(claims(nbf=datetime.now(UTC) + timedelta(minutes=5)))))


def test_it_refuses_a_token_signed_with_another_key(client: Client) -> None:
    other = serialization.load_pem_private_key(keys.generate_pem().encode(), None)

    assert_refused(pull(client, signed(claims(), key=other)))


def test_it_refuses_a_token_for_another_service(client: Client) -> None:
    assert_refused(pull(client, signed(claims(aud="another-registry"))))


def test_it_refuses_a_token_from_another_issuer(client: Client) -> None:
    assert_refused(pull(client, signed(claims(iss="someone-else"))))


@pytest.mark.parametrize("missing", ["exp", "aud", "sub", "jti"])
def test_it_refuses_a_token_without_a_required_claim(client: Client, missing: str) -> None:
    assert_refused(pull(client, signed(claims(**{missing: None}))))


def test_it_refuses_alg_none(client: Client) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(), default=lambda d: int(d.timestamp())).encode())

    assert_refused(pull(client, f"{header}.{payload}."))


def test_it_refuses_hmac_signed_with_the_public_key(client: Client) -> None:
    """The classic confusion: HS256 with the verification key as the shared secret."""
    public = keys.signing_key().public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(), default=lambda d: int(d.timestamp())).encode())
    signature = b64(hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest())

    assert_refused(pull(client, f"{header}.{payload}.{signature}"))


def test_it_refuses_a_token_whose_scope_was_tampered_with(client: Client) -> None:
    token = access.token(client, f"repository:{NAME}:pull", headers=access.basic("reader"))
    header, payload, signature = token.split(".")
    claims_ = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims_["access"][0]["actions"] = ["pull", "push", "delete"]
    forged = f"{header}.{b64(json.dumps(claims_).encode())}.{signature}"

    assert_refused(client.post(f"/v2/{NAME}/blobs/uploads/", headers=access.bearer(forged)))


def test_it_refuses_garbage(client: Client) -> None:
    assert_refused(pull(client, "not-a-token"))


def test_it_refuses_a_pull_token_for_a_push_and_asks_for_a_better_one(client: Client) -> None:
    token = access.token(client, f"repository:{NAME}:pull", headers=access.basic("writer"))

    response = client.post(f"/v2/{NAME}/blobs/uploads/", headers=access.bearer(token))

    oci.assert_error(response, 401, "UNAUTHORIZED")
    challenge = access.challenge(response)
    assert challenge["error"] == "insufficient_scope"
    assert challenge["scope"] == f"repository:{NAME}:pull,push"


def test_it_refuses_a_token_for_another_repository(client: Client) -> None:
    token = access.token(client, f"repository:{NAME}:pull,push", headers=access.basic("writer"))

    # The writer may not pull team/secret at all: denied.
    oci.assert_error(pull(client, token, "team/secret"), 403, "DENIED")
    # The reader may pull all of team/*, but not with a token for team/app: a new token is needed.
    token = access.token(client, f"repository:{NAME}:pull", headers=access.basic("reader"))
    response = pull(client, token, "team/secret")
    oci.assert_error(response, 401, "UNAUTHORIZED")
    assert access.challenge(response)["error"] == "insufficient_scope"


def test_it_verifies_its_own_tokens() -> None:
    issued = tokens.issue("writer", [{"type": "repository", "name": NAME, "actions": ["pull"]}])

    assert tokens.verify(issued.token) == ("writer", {NAME: frozenset({"pull"})})


def test_it_refuses_a_remembered_token_once_it_expired(client: Client, monkeypatch) -> None:
    token = signed(claims())
    assert pull(client, token).status_code == 200  # verified, and remembered

    later = (datetime.now(UTC) + timedelta(minutes=6)).timestamp()
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: later))
    monkeypatch.setattr(jwt.api_jwt, "datetime", _Frozen(later))

    assert_refused(pull(client, token))


class _Frozen:
    """Stands in for PyJWT's ``datetime`` so that its clock reads ``timestamp``."""

    def __init__(self, timestamp: float) -> None:
        self.timestamp = timestamp

    def now(self, tz=None) -> datetime:
        return datetime.fromtimestamp(self.timestamp, tz)


def test_it_answers_version_with_any_valid_token(client: Client) -> None:
    assert client.get("/v2/", headers=access.bearer(access.token(client))).status_code == 200
    assert_refused(client.get("/v2/", headers=access.bearer("nonsense")))
