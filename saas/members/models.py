"""Invitations to join a clinic (only a hash of the token is stored) and agencies' SSO providers."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped, utcnow
from saas.crypto import EncryptedText
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class Invitation(TenantOwned, Timestamped, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), index=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    invited_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None]

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > utcnow()


class SsoProvider(Timestamped, db.Model):
    """An agency's OpenID Connect identity provider; staff whose email domain matches may use it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(sa.ForeignKey("agency.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    metadata_url: Mapped[str] = mapped_column(sa.String(500))  # .../.well-known/openid-configuration
    client_id: Mapped[str] = mapped_column(sa.String(200))
    client_secret: Mapped[str] = mapped_column(EncryptedText)
    email_domains: Mapped[str] = mapped_column(sa.String(500))  # comma-separated, lower case
    enabled: Mapped[bool] = mapped_column(default=True)

    @property
    def domains(self) -> set[str]:
        return {d.strip().lower() for d in self.email_domains.split(",") if d.strip()}
