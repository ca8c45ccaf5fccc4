"""API keys (hashed at rest, scoped like a membership) and the idempotency record of sending POSTs.

Neither table is clinic-owned: a key may cover an agency or an organization, and the scope of a
request is computed from the key (see ``keys.clinic_ids_for``), then bound through the same ORM
tenant filter a staff request uses.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.auth.roles import Scope
from saas.common import utcnow
from saas.extensions import db


class ApiKey(db.Model):
    __tablename__ = "api_key"
    __table_args__ = (
        sa.CheckConstraint(
            "(scope = 'agency' AND agency_id IS NOT NULL AND organization_id IS NULL AND clinic_id IS NULL)"
            " OR (scope = 'organization' AND organization_id IS NOT NULL AND agency_id IS NULL AND clinic_id IS NULL)"
            " OR (scope = 'clinic' AND clinic_id IS NOT NULL AND agency_id IS NULL AND organization_id IS NULL)",
            name="one_scope",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)  # public part, shown in lists and logs
    secret_hash: Mapped[str] = mapped_column(sa.String(64))  # SHA-256 of the whole token
    name: Mapped[str] = mapped_column(sa.String(120))
    role: Mapped[str] = mapped_column(sa.String(16))
    scope: Mapped[str] = mapped_column(sa.String(16))
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agency.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    clinic_id: Mapped[int | None] = mapped_column(sa.ForeignKey("clinic.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope_id(self) -> int | None:
        return {Scope.AGENCY: self.agency_id, Scope.ORGANIZATION: self.organization_id}.get(self.scope, self.clinic_id)


class ApiIdempotency(db.Model):
    """The first answer to a sending POST under an Idempotency-Key, replayed for a retry of it."""

    __tablename__ = "api_idempotency"
    __table_args__ = (sa.UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(sa.ForeignKey("api_key.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))  # SHA-256 of method, path and body
    status_code: Mapped[int | None] = mapped_column()  # None while the first request is still running
    body: Mapped[dict | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
