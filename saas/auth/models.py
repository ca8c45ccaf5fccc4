"""Staff users and their memberships (a role at one scope)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.auth.roles import ROLES_READING_PATIENT_MESSAGES, Scope
from saas.common import Timestamped
from saas.crypto import EncryptedText
from saas.extensions import db


class User(UserMixin, Timestamped, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str | None] = mapped_column(sa.String(200))
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText)
    totp_enabled_at: Mapped[datetime | None]
    last_totp_step: Mapped[int | None]
    locale: Mapped[str] = mapped_column(sa.String(8), default="ja")
    is_active_account: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.is_active_account

    @property
    def roles(self) -> set[str]:
        return {m.role for m in self.memberships}

    @property
    def needs_two_factor(self) -> bool:
        return bool(self.roles & ROLES_READING_PATIENT_MESSAGES)

    @property
    def has_two_factor(self) -> bool:
        return self.totp_enabled_at is not None


class Membership(Timestamped, db.Model):
    """A role granted at exactly one scope; a wider scope covers everything beneath it."""

    __table_args__ = (
        sa.CheckConstraint(
            "(scope = 'platform' AND agency_id IS NULL AND organization_id IS NULL AND clinic_id IS NULL)"
            " OR (scope = 'agency' AND agency_id IS NOT NULL AND organization_id IS NULL AND clinic_id IS NULL)"
            " OR (scope = 'organization' AND organization_id IS NOT NULL AND agency_id IS NULL AND clinic_id IS NULL)"
            " OR (scope = 'clinic' AND clinic_id IS NOT NULL AND agency_id IS NULL AND organization_id IS NULL)",
            name="one_scope",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    scope: Mapped[str] = mapped_column(sa.String(16))
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agency.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    clinic_id: Mapped[int | None] = mapped_column(sa.ForeignKey("clinic.id", ondelete="CASCADE"), index=True)

    user: Mapped[User] = relationship(back_populates="memberships")

    def covers(self, clinic) -> bool:
        """Whether this membership applies to the given clinic."""
        if self.scope == Scope.PLATFORM:
            return True
        if self.scope == Scope.AGENCY:
            return clinic.organization.agency_id == self.agency_id
        if self.scope == Scope.ORGANIZATION:
            return clinic.organization_id == self.organization_id
        return clinic.id == self.clinic_id


class StaffSession(db.Model):
    """One signed-in browser. The cookie carries only ``token_hash``'s preimage; the server decides.

    Every request checks this row, so logout, a password change, a role removal or an admin's
    "sign out everywhere" ends the session at once, whatever copies of the cookie exist.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    signed_in_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]  # when sign-in was complete (password, and TOTP if required)
    ip_address: Mapped[str] = mapped_column(sa.String(64), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(400), default="")
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str] = mapped_column(sa.String(32), default="")

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class RecoveryCode(db.Model):
    """A single-use two-factor recovery code; only its salted argon2 hash is stored."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class PasswordReset(db.Model):
    """A password-reset link sent by email: single use, expiring, only the token's SHA-256 stored."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
