"""The token signing key: ECDSA P-256 (ES256) from settings, or generated once for the embedded default.

``CROW_TOKEN_KEY`` (or ``CROW_TOKEN_KEY_FILE``) holds a PEM private key; every
replica of a deployment must share it. Without one, the first process that
needs a key writes a new one to ``CROW_TOKEN_KEY_PATH`` (``var/token-key.pem``,
mode 0600); concurrent processes race safely: the file appears whole, through
a hard link of a finished temporary file, and whoever loses reads the winner's.
"""

import base64
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class SigningKey:
    private: ec.EllipticCurvePrivateKey
    public: ec.EllipticCurvePublicKey
    kid: str


def signing_key() -> SigningKey:
    return _load(settings.CROW_TOKEN_KEY, str(settings.CROW_TOKEN_KEY_PATH))


def parse(pem: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM; ``ImproperlyConfigured`` for anything else."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"the token key is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ImproperlyConfigured("the token key must be an ECDSA P-256 key (ES256)")
    return key


def generate_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@lru_cache(maxsize=4)
def _load(pem: str, path: str) -> SigningKey:
    private = parse(pem or _generated(Path(path)))
    public = private.public_key()
    return SigningKey(private, public, _thumbprint(public))


def _generated(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(generate_pem())
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: use its key
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_text()


def _thumbprint(public: ec.EllipticCurvePublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint: a stable ``kid`` that names the key, never reveals it."""
    numbers = public.public_numbers()

    def coordinate(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()

    jwk = {"crv": "P-256", "kty": "EC", "x": coordinate(numbers.x), "y": coordinate(numbers.y)}
    digest = hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
