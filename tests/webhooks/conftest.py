"""RSA key pairs for the webhook tests, made once per session (2048 bits: PyJWT warns below)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class KeyPair:
    private: rsa.RSAPrivateKey
    private_pem: bytes
    public_pem: bytes


def _make_pair() -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(
        private=private,
        private_pem=private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        public_pem=private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


@pytest.fixture(scope="session")
def app_keys() -> KeyPair:
    """The app's key pair: Wix signs with the private half, receivers hold the public one."""
    return _make_pair()


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    """A key pair that is not the app's."""
    return _make_pair()
