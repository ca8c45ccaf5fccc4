"""Signed, short-lived QR tokens: the desk's rotating stamp QR and a patient's card QR.

A token is ``<kind>.<clinic id>.<issued (unix s)>.<nonce>.<HMAC-SHA256>`` signed with the
clinic's desk key (kept encrypted at rest). The desk QR is good for one rotation
(``qr_seconds``) plus a few seconds for the hop from LINE's camera to the browser, so a photo
of it is useless once the desk shows the next one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

GRACE_SECONDS = 10  # LINE's camera → in-app browser → our server
CARD_TOKEN_SECONDS = 300  # a patient's card QR, shown on their phone to staff


class TokenRefused(Exception):
    """The token is not ours, not this clinic's, tampered with, or too old; ``kind`` says which."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class Token:
    kind: str  # desk | card
    clinic_id: int
    issued: int
    subject: str  # desk: a nonce; card: the card's public id
    raw: str


def _mac(key: str, payload: str) -> str:
    digest = hmac.new(key.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def make(kind: str, clinic_id: int, key: str, subject: str | None = None, now: float | None = None) -> str:
    """A new signed token of ``kind`` for the clinic."""
    issued = int(now if now is not None else time.time())
    payload = f"{kind}.{clinic_id}.{issued}.{subject or secrets.token_urlsafe(9)}"
    return f"{payload}.{_mac(key, payload)}"


def clinic_of(raw: str) -> int | None:
    """The clinic a token claims (before its signature is checked with that clinic's key)."""
    parts = (raw or "").split(".")
    return int(parts[1]) if len(parts) == 5 and parts[1].isdigit() else None


def verify(raw: str, kind: str, clinic_id: int, key: str, lifetime: int, now: float | None = None) -> Token:
    """The token if it is this clinic's, of ``kind``, untampered and younger than ``lifetime`` s."""
    parts = (raw or "").split(".")
    if len(parts) != 5 or parts[0] != kind or not parts[2].isdigit():
        raise TokenRefused("malformed")
    if clinic_of(raw) != clinic_id:
        raise TokenRefused("other_clinic")
    if not hmac.compare_digest(parts[4], _mac(key, ".".join(parts[:4]))):
        raise TokenRefused("signature")
    age = (now if now is not None else time.time()) - int(parts[2])
    if age > lifetime or age < -GRACE_SECONDS:
        raise TokenRefused("expired")
    return Token(kind, clinic_id, int(parts[2]), parts[3], raw)
