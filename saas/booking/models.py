"""Booking settings, slots (one row per bookable time, holding its seat count) and bookings."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.crypto import EncryptedText
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class BookingMode(enum.StrEnum):
    OFF = "off"
    EXTERNAL = "external"  # the 予約 button opens the clinic's own booking system
    NATIVE = "native"  # slots from the schedule, booked here with LINE Login


class BookingStatus(enum.StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    VISITED = "visited"
    NO_SHOW = "no_show"


class ReminderState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker; re-claimable when stale (the retry key makes it safe)
    SENT = "sent"
    SKIPPED = "skipped"  # cancelled, reminders off, or the time passed before it could be sent


def new_retry_key() -> str:
    return str(uuid.uuid4())


class BookingSettings(TenantOwned, Timestamped, db.Model):
    """One row per clinic."""

    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mode: Mapped[str] = mapped_column(sa.String(16), default=BookingMode.OFF)
    external_url: Mapped[str] = mapped_column(sa.String(500), default="")
    slot_minutes: Mapped[int] = mapped_column(default=30)
    capacity_per_slot: Mapped[int] = mapped_column(default=1)
    days_ahead: Mapped[int] = mapped_column(default=14)
    reminder_hour: Mapped[int] = mapped_column(default=18)  # the day before, clinic local time
    reminders_enabled: Mapped[bool] = mapped_column(default=True)
    # The clinic's LINE Login channel (a different channel from the Messaging API one).
    login_channel_id: Mapped[str | None] = mapped_column(sa.String(32))
    login_channel_secret: Mapped[str | None] = mapped_column(EncryptedText)

    @property
    def login_ready(self) -> bool:
        return bool(self.login_channel_id and self.login_channel_secret)


class Slot(TenantOwned, db.Model):
    """A bookable time. ``booked_count`` only moves through conditional UPDATEs (see services)."""

    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "starts_at"),
        sa.CheckConstraint("booked_count >= 0 AND booked_count <= capacity", name="seats_within_capacity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(index=True)  # clinic local time (naive)
    ends_at: Mapped[datetime] = mapped_column()
    capacity: Mapped[int] = mapped_column(default=1)
    booked_count: Mapped[int] = mapped_column(default=0)


class Booking(TenantOwned, Timestamped, db.Model):
    __table_args__ = (sa.Index("ix_booking_reminder_due", "reminder_state", "reminder_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(sa.ForeignKey("slot.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(index=True)  # clinic local time, copied from the slot
    ends_at: Mapped[datetime] = mapped_column()
    friend_id: Mapped[int | None] = mapped_column(sa.ForeignKey("friend.id", ondelete="SET NULL"), index=True)
    line_user_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    patient_name: Mapped[str] = mapped_column(sa.String(200), default="")
    status: Mapped[str] = mapped_column(sa.String(16), default=BookingStatus.CONFIRMED, index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column()
    cancelled_by: Mapped[str] = mapped_column(sa.String(16), default="")  # patient / staff
    confirmation_retry_key: Mapped[str] = mapped_column(sa.String(36), default=new_retry_key)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column()
    reminder_at: Mapped[datetime | None] = mapped_column()  # UTC (naive)
    reminder_state: Mapped[str] = mapped_column(sa.String(16), default=ReminderState.PENDING)
    reminder_claimed_at: Mapped[datetime | None] = mapped_column()
    reminder_retry_key: Mapped[str] = mapped_column(sa.String(36), default=new_retry_key)
    reminder_sent_at: Mapped[datetime | None] = mapped_column()
    closure_notice_retry_key: Mapped[str] = mapped_column(sa.String(36), default=new_retry_key)
    closure_notified_at: Mapped[datetime | None] = mapped_column()

    @property
    def is_active(self) -> bool:
        return self.status == BookingStatus.CONFIRMED
