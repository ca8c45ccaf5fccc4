"""Weekly opening blocks, closures and substitute doctors, and urgent-notice requests."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped, utcnow
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_LABELS = ("月", "火", "水", "木", "金", "土", "日")


class ClosureKind(enum.StrEnum):
    CLOSED = "closed"  # 休診
    SUBSTITUTE = "substitute"  # 代診: open, another doctor sees patients


class ScheduleSettings(TenantOwned, Timestamped, db.Model):
    """One row per clinic: rules that apply to the whole calendar."""

    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    closed_on_public_holidays: Mapped[bool] = mapped_column(default=True)
    note: Mapped[str] = mapped_column(sa.Text, default="")


class WeeklyBlock(TenantOwned, Timestamped, db.Model):
    """One opening block on one weekday, e.g. 月曜 午前 09:00–12:30."""

    __table_args__ = (sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_of_a_week"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    weekday: Mapped[int] = mapped_column(sa.SmallInteger)  # 0 = Monday
    label: Mapped[str] = mapped_column(sa.String(40), default="")
    start: Mapped[str] = mapped_column(sa.String(5))  # "HH:MM", clinic local time
    end: Mapped[str] = mapped_column(sa.String(5))


class Closure(TenantOwned, Timestamped, db.Model):
    """A 休診 (whole days or some blocks) or a 代診 over a date range."""

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default=ClosureKind.CLOSED)
    starts_on: Mapped[date] = mapped_column(sa.Date, index=True)
    ends_on: Mapped[date] = mapped_column(sa.Date, index=True)
    blocks: Mapped[str] = mapped_column(sa.String(200), default="")  # comma-separated labels; "" = whole day
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    substitute_doctor: Mapped[str] = mapped_column(sa.String(120), default="")
    notify_friends: Mapped[bool] = mapped_column(default=False)

    @property
    def block_labels(self) -> list[str]:
        return [label.strip() for label in self.blocks.split(",") if label.strip()]

    @property
    def is_substitute(self) -> bool:
        return self.kind == ClosureKind.SUBSTITUTE


class UrgentNoticeRequest(TenantOwned, Timestamped, db.Model):
    """A request to notify every friend about a closure; the send pipeline picks up 'pending' rows."""

    id: Mapped[int] = mapped_column(primary_key=True)
    closure_id: Mapped[int | None] = mapped_column(sa.ForeignKey("closure.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    text: Mapped[str] = mapped_column(sa.Text, default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
