"""An organization's overrides of the shipped advertising rules.

Organization-level, like the shared library: not clinic-owned, so not TenantOwned; who may read
or change them is decided by the organization administration check (saas.groups.services).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db


class AdRuleOverride(Timestamped, db.Model):
    """One shipped rule as an organization wants it: off, another severity, more or allowed phrases."""

    __tablename__ = "ad_rule_override"
    __table_args__ = (sa.UniqueConstraint("organization_id", "rule_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(sa.String(40))
    enabled: Mapped[bool] = mapped_column(default=True)
    severity: Mapped[str | None] = mapped_column(sa.String(16))  # None: as shipped
    extra_phrases: Mapped[list] = mapped_column(sa.JSON, default=list)
    allowed_phrases: Mapped[list] = mapped_column(sa.JSON, default=list)
