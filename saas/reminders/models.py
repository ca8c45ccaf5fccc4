"""Recurring reminder rules and the record of each reminder they produced (once per due date)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class RuleKind(enum.StrEnum):
    VACCINATION = "vaccination"  # 予防接種（次回接種）
    HEALTH_CHECK = "health_check"  # 健康診断
    RECALL = "recall"  # 定期検診のご案内


class ReminderRule(TenantOwned, Timestamped, db.Model):
    """Remind friends ``months_after`` months after their last visit (optionally only a tag)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(20), default=RuleKind.RECALL)
    months_after: Mapped[int] = mapped_column(default=3)
    tag_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tag.id", ondelete="SET NULL"))
    message: Mapped[str] = mapped_column(sa.Text)
    send_hour: Mapped[int] = mapped_column(default=10)
    active: Mapped[bool] = mapped_column(default=True)


class RuleReminder(TenantOwned, db.Model):
    """One reminder a rule owes a friend for one due date: the unique key makes it happen once."""

    __table_args__ = (sa.UniqueConstraint("rule_id", "friend_id", "due_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(sa.ForeignKey("reminder_rule.id", ondelete="CASCADE"), index=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    due_on: Mapped[date] = mapped_column(sa.Date)
    state: Mapped[str] = mapped_column(sa.String(16), default="pending")
    claimed_at: Mapped[datetime | None] = mapped_column()
    retry_key: Mapped[str] = mapped_column(sa.String(36), default=lambda: str(uuid.uuid4()))
    sent_at: Mapped[datetime | None] = mapped_column()
