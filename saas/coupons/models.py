"""Coupons, each patient's ticket (with the code shown at the desk), sends and redemptions.

Exactly-once redemption rests on the database: a ticket's and a coupon's use counters only
move through conditional UPDATEs (``used_count < allowed``), and a redemption row is unique
per (ticket, use number), so two desks redeeming one code at the same moment get one use.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped, utcnow
from saas.extensions import db
from saas.privacy.coverage import ANONYMISE, KEEP, patient_table
from saas.tenancy.scoping import TenantOwned

# Codes are read aloud and typed at the desk: no 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def new_public_id() -> str:
    return secrets.token_urlsafe(12)


class Purpose(enum.StrEnum):
    SELF_PAY = "self_pay"  # 自費診療
    CHECKUP = "checkup"  # 健診・検診・予防接種（自費）
    GOODS = "goods"  # 物販
    INSURED = "insured"  # 保険診療: offered in the form only to be refused with the reason


class RewardKind(enum.StrEnum):
    DISCOUNT_PERCENT = "discount_percent"
    DISCOUNT_YEN = "discount_yen"
    FREE = "free"
    GIFT = "gift"
    OTHERS = "others"


class Target(enum.StrEnum):
    ALL = "all"  # every friend with marketing consent
    SEGMENT = "segment"
    STEP = "step"  # attached to a step of a scenario (offered when step delivery exists)
    REWARD = "reward"  # issued by a shop card reward only


class CouponStatus(enum.StrEnum):
    DRAFT = "draft"
    RUNNING = "running"  # published on LINE: can be sent and redeemed
    CLOSED = "closed"


class Coupon(TenantOwned, Timestamped, db.Model):
    """A coupon for a self-pay service, mirrored to LINE's coupon while it runs."""

    __table_args__ = (sa.Index("ix_coupon_clinic_status", "clinic_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(24), unique=True, default=new_public_id)
    title: Mapped[str] = mapped_column(sa.String(60))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    usage_condition: Mapped[str] = mapped_column(sa.String(100), default="")
    purpose: Mapped[str] = mapped_column(sa.String(16), default=Purpose.SELF_PAY)
    service: Mapped[str] = mapped_column(sa.String(100), default="")  # what it is for, in words
    reward_kind: Mapped[str] = mapped_column(sa.String(24), default=RewardKind.DISCOUNT_PERCENT)
    reward_value: Mapped[int] = mapped_column(default=0)
    starts_at: Mapped[datetime] = mapped_column()  # naive UTC
    ends_at: Mapped[datetime] = mapped_column()
    total_limit: Mapped[int | None] = mapped_column()  # uses over all patients; None: no limit
    per_patient_limit: Mapped[int] = mapped_column(default=1)
    target: Mapped[str] = mapped_column(sa.String(16), default=Target.ALL)
    segment: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default=CouponStatus.DRAFT)
    line_coupon_id: Mapped[str | None] = mapped_column(sa.String(64))
    used_count: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[int | None] = mapped_column()


class CouponTicket(TenantOwned, db.Model):
    """One patient's copy of a coupon: the code staff type or scan, and how often it was used."""

    __table_args__ = (sa.UniqueConstraint("coupon_id", "friend_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(sa.ForeignKey("coupon.id", ondelete="CASCADE"), index=True)
    friend_id: Mapped[int | None] = mapped_column(sa.ForeignKey("friend.id", ondelete="SET NULL"), index=True)
    line_user_id: Mapped[str | None] = mapped_column(sa.String(64))
    code: Mapped[str] = mapped_column(sa.String(16), unique=True, default=new_code)  # unique across clinics
    delivery_id: Mapped[int | None] = mapped_column()  # the send that brought it (analytics)
    origin: Mapped[str] = mapped_column(sa.String(16), default="delivery")  # delivery | reward | page
    uses_allowed: Mapped[int] = mapped_column(default=1)
    used_count: Mapped[int] = mapped_column(default=0)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)


class CouponSend(TenantOwned, db.Model):
    """A delivery that carried the coupon: the patient page accepts only these as attribution."""

    __table_args__ = (sa.UniqueConstraint("coupon_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(sa.ForeignKey("coupon.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[int] = mapped_column(index=True)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class CouponRedemption(TenantOwned, db.Model):
    """One use of a ticket at the desk, by whom, and which send had delivered the coupon."""

    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "use_no"),
        sa.Index("ix_coupon_redemption_coupon", "clinic_id", "coupon_id", "redeemed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(sa.ForeignKey("coupon.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("coupon_ticket.id", ondelete="CASCADE"))
    use_no: Mapped[int] = mapped_column()
    friend_id: Mapped[int | None] = mapped_column(sa.ForeignKey("friend.id", ondelete="SET NULL"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(index=True)
    redeemed_at: Mapped[datetime] = mapped_column(default=utcnow)
    staff_user_id: Mapped[int | None] = mapped_column()
    staff_email: Mapped[str] = mapped_column(sa.String(255), default="")


# Tickets and redemptions stay for the coupon's figures; erasure cuts them loose from the patient.
patient_table("coupon_ticket", keys=("friend_id", "line_user_id"), erase=ANONYMISE, section="coupons")
patient_table(
    "coupon_redemption", keys=("friend_id",), erase=KEEP, section="coupon_redemptions",
    why="ids and times only, for the coupon's figures; the friend is erased",
)  # fmt: skip
