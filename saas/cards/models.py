"""A clinic's point card settings and rewards, each patient's card, and every stamp.

At most one stamp per card and visit day is a unique constraint, so two scans racing (or a
replayed desk QR) cannot stamp twice.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped, utcnow
from saas.crypto import EncryptedText
from saas.extensions import db
from saas.privacy.coverage import DELETE, patient_table
from saas.tenancy.scoping import TenantOwned


def new_desk_key() -> str:
    return secrets.token_urlsafe(32)


class CardSettings(TenantOwned, Timestamped, db.Model):
    """One row per clinic: whether the card is on, points per visit, expiry, the desk QR's key."""

    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    name: Mapped[str] = mapped_column(sa.String(60), default="診察券ポイント")
    points_per_visit: Mapped[int] = mapped_column(default=1)
    expiry_days: Mapped[int | None] = mapped_column(default=365)  # points lapse this long after the last stamp
    restart_after_last_reward: Mapped[bool] = mapped_column(default=True)
    qr_seconds: Mapped[int] = mapped_column(default=45)  # the desk QR rotates this often
    desk_key: Mapped[str] = mapped_column(EncryptedText, default=new_desk_key)  # HMAC key, encrypted at rest


class CardReward(TenantOwned, db.Model):
    """At ``threshold`` points the patient receives a ticket of ``coupon_id``."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "threshold"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    threshold: Mapped[int] = mapped_column()
    coupon_id: Mapped[int] = mapped_column(sa.ForeignKey("coupon.id", ondelete="CASCADE"))


class PointCard(TenantOwned, Timestamped, db.Model):
    """One patient's card at one clinic."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "friend_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    line_user_id: Mapped[str] = mapped_column(sa.String(64))
    public_id: Mapped[str] = mapped_column(sa.String(24), unique=True, default=lambda: secrets.token_urlsafe(12))
    points: Mapped[int] = mapped_column(default=0)
    stamps_total: Mapped[int] = mapped_column(default=0)
    rounds_completed: Mapped[int] = mapped_column(default=0)
    last_stamp_on: Mapped[date | None] = mapped_column()
    expires_on: Mapped[date | None] = mapped_column()


class CardStamp(TenantOwned, db.Model):
    """One stamp: which visit day, how (desk QR or staff scan), which desk token."""

    __table_args__ = (sa.UniqueConstraint("card_id", "visit_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(sa.ForeignKey("point_card.id", ondelete="CASCADE"), index=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    visit_day: Mapped[date] = mapped_column()
    points: Mapped[int] = mapped_column(default=1)
    method: Mapped[str] = mapped_column(sa.String(16))  # desk_qr | staff_scan
    token_nonce: Mapped[str] = mapped_column(sa.String(32), default="")
    staff_user_id: Mapped[int | None] = mapped_column()
    stamped_at: Mapped[datetime] = mapped_column(default=utcnow)


patient_table("card_stamp", keys=("friend_id",), erase=DELETE, section="card_stamps")
patient_table("point_card", keys=("friend_id", "line_user_id"), erase=DELETE, section="point_card")
