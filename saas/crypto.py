"""Encryption at rest for channel secrets, tokens and TOTP seeds.

``ENCRYPTION_KEY`` holds one or more Fernet keys separated by commas: the first encrypts,
all of them decrypt, so a key is rotated by putting the new one first and running
``flask rotate-encryption``. Without it (development) a key is derived from SECRET_KEY.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator


class DecryptionError(RuntimeError):
    """A stored value could not be decrypted with any configured key."""


def derived_key(secret_key: str) -> bytes:
    """The development key: derived from SECRET_KEY (refused outside development, see saas.config)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tsunagu-at-rest", info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def keyring() -> MultiFernet:
    """The configured keys, newest first."""
    configured = current_app.config.get("ENCRYPTION_KEY", "")
    keys = [k.strip().encode() for k in configured.split(",") if k.strip()]
    if not keys:
        keys = [derived_key(current_app.config["SECRET_KEY"])]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plaintext: str) -> str:
    return keyring().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return keyring().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored secret cannot be decrypted with the configured ENCRYPTION_KEY") from exc


def rotate(token: str) -> str:
    """Re-encrypt a stored value with the newest key."""
    try:
        return keyring().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored secret cannot be decrypted with the configured ENCRYPTION_KEY") from exc


class EncryptedText(TypeDecorator):
    """A text column stored as a Fernet token; Python code only ever sees plaintext."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else encrypt(value)

    def process_result_value(self, value, dialect):
        return None if value is None else decrypt(value)
