"""Each clinic's retention settings (one row per clinic, created with the defaults on first use)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned

# Defaults and bounds in days; the reasoning (医師法・療養担当規則) is in saas/retention/README.md.
MESSAGE_BODY_MIN_DAYS = 5 * 365 + 2  # 診療録 are kept five years: never offer less
WEBHOOK_EVENT_DAYS, WEBHOOK_EVENT_RANGE = 30, (7, 365)
DELIVERY_RECIPIENT_DAYS, DELIVERY_RECIPIENT_RANGE = 180, (30, 5 * 365 + 2)


class RetentionPolicy(TenantOwned, Timestamped, db.Model):
    """How long a clinic keeps what grows with traffic. ``message_body_days`` None: forever."""

    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_body_days: Mapped[int | None] = mapped_column()
    webhook_event_days: Mapped[int] = mapped_column(default=WEBHOOK_EVENT_DAYS)
    delivery_recipient_days: Mapped[int] = mapped_column(default=DELIVERY_RECIPIENT_DAYS)
    # Message bodies older than this have been archived and blanked (the purge's watermark).
    message_bodies_archived_before: Mapped[datetime | None] = mapped_column()
