"""Passwords (argon2), TOTP two-factor and the login throttle."""

from __future__ import annotations

import base64
import time

import pyotp
import segno
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from flask import current_app

from saas.auth.models import User
from saas.common import utcnow
from saas.extensions import db
from saas.queues import get_redis

_hasher = PasswordHasher()
TOTP_ISSUER = "Tsunagu"


class LoginThrottled(Exception):
    """Too many failed logins for this email or address in the last minute."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return True


def get_user_by_email(email: str) -> User | None:
    return db.session.scalars(sa.select(User).where(User.email == email.strip().lower())).first()


def create_user(email: str, name: str, password: str | None) -> User:
    user = User(email=email.strip().lower(), name=name, password_hash=hash_password(password) if password else None)
    db.session.add(user)
    return user


def _throttle_keys(email: str, remote_addr: str) -> list[str]:
    # One hash tag: the pair is read with MGET, which Redis Cluster allows only within one slot.
    return [f"{{login-failures}}:email:{email.strip().lower()}", f"{{login-failures}}:addr:{remote_addr}"]


def ensure_login_allowed(email: str, remote_addr: str) -> None:
    """Raise LoginThrottled when this email or address failed too often this minute."""
    limit = current_app.config["LOGIN_ATTEMPTS_PER_MINUTE"]
    counts = get_redis().mget(_throttle_keys(email, remote_addr))
    if any(int(count or 0) >= limit for count in counts):
        raise LoginThrottled()


def record_login_failure(email: str, remote_addr: str) -> None:
    pipe = get_redis().pipeline()
    for key in _throttle_keys(email, remote_addr):
        pipe.set(key, 0, ex=60, nx=True)  # the window starts at the first failure
        pipe.incr(key)
    pipe.execute()


def authenticate(email: str, password: str, remote_addr: str) -> User | None:
    """The user for these credentials, or None; raises LoginThrottled past the limit."""
    ensure_login_allowed(email, remote_addr)
    user = get_user_by_email(email)
    if user is None or not user.is_active or not check_password(user, password):
        record_login_failure(email, remote_addr)
        return None
    return user


def start_totp_enrolment(user: User) -> str:
    """Give the user a fresh (not yet confirmed) TOTP secret and return it."""
    user.totp_secret = pyotp.random_base32()
    user.totp_enabled_at = None
    return user.totp_secret


def totp_provisioning_uri(user: User) -> str:
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


def totp_qr_data_uri(user: User) -> str:
    """The enrolment QR code as an inline SVG data URI."""
    svg = segno.make(totp_provisioning_uri(user), error="m").svg_inline(scale=5, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def verify_totp(user: User, code: str) -> bool:
    """Check a 6-digit code; each time step is accepted once, so a code cannot be replayed."""
    if not user.totp_secret:
        return False
    totp = pyotp.TOTP(user.totp_secret)
    code = code.strip().replace(" ", "")
    now = time.time()
    for drift in (0, -1, 1):
        step = int(now // totp.interval) + drift
        if totp.at(step * totp.interval) == code and step > (user.last_totp_step or 0):
            user.last_totp_step = step
            return True
    return False


def confirm_totp(user: User, code: str) -> bool:
    if verify_totp(user, code):
        user.totp_enabled_at = utcnow()
        return True
    return False
