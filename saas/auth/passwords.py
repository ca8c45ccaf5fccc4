"""Password policy (minimum length and zxcvbn's strength estimate) and password-reset links.

A reset link carries a random token; only its SHA-256 is stored. It works once, for
PASSWORD_RESET_MINUTES, and using it ends every session of the account.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from zxcvbn import zxcvbn

from saas.auth.models import PasswordReset, User
from saas.common import utcnow
from saas.extensions import db

# zxcvbn 4 = more than 10^10 guesses. 3 (10^8) let "tsunagu-2026!" through; passphrases of a few words pass.
MINIMUM_SCORE = 4
PRODUCT_WORDS = ["tsunagu", "つなぐ", "line", "clinic", "クリニック", "password", "パスワード"]


def problem_with(password: str, *, user_inputs: list[str] = ()) -> str | None:
    """Why this password is refused (a sentence for the user), or None when it is acceptable.

    ``user_inputs`` are the user's own email, name, clinic names: passwords built from them are weak.
    """
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        return _("パスワードは%(n)s文字以上にしてください。", n=minimum)
    if len(password) > 256:
        return _("パスワードは256文字以内にしてください。")
    inputs = [*PRODUCT_WORDS, *(part for value in user_inputs for part in _parts(value))]
    if zxcvbn(password[:100], user_inputs=inputs)["score"] < MINIMUM_SCORE:
        return _(
            "このパスワードは推測されやすいため使えません。よく使われる語やお名前・メールアドレスを避け、"
            "複数の単語を組み合わせた長いパスワードにしてください。"
        )
    return None


def _parts(value: str) -> list[str]:
    """An email or a name, and its pieces: 'hanako.sato@sakura.example' → hanako, sato, sakura, …"""
    pieces = [value] + [p for p in value.replace("@", " ").replace(".", " ").replace("-", " ").split() if p]
    return [p.lower() for p in pieces if len(p) >= 3]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_reset(user: User) -> str:
    """Create a reset link for the user and return its token; earlier unused links stop working."""
    now = utcnow()
    db.session.execute(
        sa.update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    token = secrets.token_urlsafe(32)
    lifetime = timedelta(minutes=current_app.config["PASSWORD_RESET_MINUTES"])
    db.session.add(PasswordReset(user_id=user.id, token_hash=_hash(token), created_at=now, expires_at=now + lifetime))
    return token


def usable_reset(token: str) -> PasswordReset | None:
    """The unused, unexpired reset for this token, or None."""
    reset = db.session.scalars(sa.select(PasswordReset).where(PasswordReset.token_hash == _hash(token))).first()
    if reset is None or reset.used_at is not None or reset.expires_at <= utcnow():
        return None
    return reset


def burn_reset(reset: PasswordReset) -> bool:
    """Mark the reset used; False when a concurrent request used it first."""
    burned = db.session.execute(
        sa.update(PasswordReset)
        .where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return burned.rowcount == 1
