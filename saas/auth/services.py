"""Passwords (argon2), sign-in, TOTP two-factor and its recovery codes."""

from __future__ import annotations

import base64
import io
import secrets
import time

import pyotp
import segno
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from saas.auth import sessions, throttle
from saas.auth.models import RecoveryCode, User
from saas.common import utcnow
from saas.extensions import db

_hasher = PasswordHasher()
# Recovery codes are random (80 bits), not chosen by people: a light argon2id (still salted, as
# ASVS 6.5.2 asks below 112 bits) keeps issuing ten and checking up to ten fast.
_code_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
TOTP_ISSUER = "Tsunagu"


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


def authenticate(email: str, password: str, address: str) -> User | None:
    """The user for these credentials, or None; raises throttle.Throttled while paused.

    The per-email limit does not apply from an address where the user signed in before.
    """
    user = get_user_by_email(email)
    throttle.ensure_login_allowed(email, address, known_address=sessions.signed_in_from_before(user, address))
    if user is None or not user.is_active or not check_password(user, password):
        throttle.record_login_failure(email, address)
        return None
    throttle.clear_login_failures(email, address)
    return user


def set_password(user: User, password: str, *, keep=None) -> None:
    """Store a new password (the caller checked the policy) and end the user's sessions but ``keep``."""
    user.password_hash = hash_password(password)
    sessions.end_all_for(user.id, "password_changed", keep=keep)


def start_totp_enrolment(user: User) -> str:
    """Give a not-yet-enrolled user a fresh TOTP secret and return it.

    Refused once enrolment is confirmed: the key is never shown or replaced again, except after
    an admin's audited reset (``reset_two_factor``).
    """
    if user.has_two_factor:
        raise ValueError("two-factor is already enrolled; an admin must reset it first")
    user.totp_secret = pyotp.random_base32()
    user.totp_enabled_at = None
    return user.totp_secret


def totp_provisioning_uri(user: User) -> str:
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


def totp_qr_data_uri(user: User) -> str:
    """The enrolment QR code as an SVG data URI (a standalone SVG, with its XML namespace)."""
    svg = io.BytesIO()
    segno.make(totp_provisioning_uri(user), error="m").save(svg, kind="svg", scale=5, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.getvalue()).decode()


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


RECOVERY_CODE_COUNT = 10


def _normalised(code: str) -> str:
    return code.strip().replace("-", "").replace(" ", "").upper()


def issue_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with fresh ones and return them (shown once).

    80 random bits each: below ASVS 6.5.2's 112 bits, so they are stored as salted argon2 hashes.
    """
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(10)).decode()  # 16 characters
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    now = utcnow()
    db.session.add_all(
        RecoveryCode(user_id=user.id, code_hash=_code_hasher.hash(_normalised(c)), created_at=now) for c in codes
    )
    return codes


def looks_like_recovery_code(code: str) -> bool:
    return len(_normalised(code)) == 16


def _matching_code(user: User, code: str) -> RecoveryCode | None:
    unused = sa.select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    for candidate in db.session.scalars(unused):
        try:
            if _code_hasher.verify(candidate.code_hash, _normalised(code)):
                return candidate
        except (VerifyMismatchError, InvalidHashError):
            continue
    return None


def use_recovery_code(user: User, code: str) -> bool:
    """Spend one unused recovery code of the user; a second use of the same code fails."""
    candidate = _matching_code(user, code)
    if candidate is None:
        return False
    used = db.session.execute(
        sa.update(RecoveryCode)
        .where(RecoveryCode.id == candidate.id, RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return used.rowcount == 1  # a concurrent use of the same code finds it spent


def unused_recovery_codes(user: User) -> int:
    statement = sa.select(sa.func.count(RecoveryCode.id)).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
    )
    return db.session.scalar(statement) or 0


def reset_two_factor(user: User) -> None:
    """Forget the user's TOTP key and recovery codes and end their sessions; they enrol again."""
    user.totp_secret, user.totp_enabled_at, user.last_totp_step = None, None, None
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    sessions.end_all_for(user.id, "two_factor_reset")
