"""Webhook events as received, one row per LINE ``webhookEventId`` per clinic."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import BigId, utcnow
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class EventState(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    HANDLED = "handled"
    FAILED = "failed"


class WebhookEvent(TenantOwned, db.Model):
    """A LINE webhook event; the unique key makes redeliveries and races collapse to one row."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "webhook_event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_event_id: Mapped[str] = mapped_column(sa.String(64))
    event_type: Mapped[str] = mapped_column(sa.String(32))
    line_user_id: Mapped[str | None] = mapped_column(sa.String(64))
    occurred_at: Mapped[datetime] = mapped_column()
    is_redelivery: Mapped[bool] = mapped_column(default=False)
    mode: Mapped[str] = mapped_column(sa.String(16), default="active")
    reply_token: Mapped[str | None] = mapped_column(sa.String(255))
    reply_token_expires_at: Mapped[datetime | None] = mapped_column()
    # Set, and committed, before the reply is handed to LINE: a retry after a crash then knows
    # LINE may have taken it and never answers again by push (saas.friends.replies).
    reply_sent_at: Mapped[datetime | None] = mapped_column()
    payload: Mapped[dict] = mapped_column(sa.JSON)
    state: Mapped[str] = mapped_column(sa.String(16), default=EventState.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime | None] = mapped_column()
    handled_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(sa.Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def reply_token_usable(self) -> bool:
        expires = self.reply_token_expires_at
        return bool(self.reply_token and expires and expires > utcnow() and self.mode == "active")
