"""Per-clinic privacy settings: what counts as sensitive data in a chat, and the privacy note."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class PrivacySettings(TenantOwned, Timestamped, db.Model):
    """Sensitive-data patterns (regular expressions with a label), keywords and the note staff see."""

    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patterns: Mapped[list] = mapped_column(sa.JSON, default=list)  # [{"label": ..., "pattern": ...}]
    keywords: Mapped[list] = mapped_column(sa.JSON, default=list)  # diagnoses and other words
    privacy_note: Mapped[str] = mapped_column(sa.Text, default="")
