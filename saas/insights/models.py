"""What LINE told us about sends and the account, and which delivery each block followed.

Counts LINE withholds (privacy threshold: fewer than 20 users, and some other cases) are stored
as NULL, never 0. Dates of LINE's daily figures are Japan dates.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import BigId, Timestamped
from saas.extensions import db
from saas.privacy.coverage import DELETE, patient_table
from saas.tenancy.scoping import TenantOwned


class RequestStatus:
    PENDING = "pending"  # not asked yet, or LINE's figures may still change
    READY = "ready"  # figures stored (they are refreshed for 14 days)
    UNAVAILABLE = "unavailable"  # LINE has no statistics for this request


class Interactions:
    """LINE's interaction figures (nullable: None is "withheld", not zero)."""

    delivered: Mapped[int | None] = mapped_column(sa.BigInteger)
    impressions: Mapped[int | None] = mapped_column(sa.BigInteger)  # times the first bubble was shown
    unique_impressions: Mapped[int | None] = mapped_column(sa.BigInteger)  # users who opened
    unique_clicks: Mapped[int | None] = mapped_column(sa.BigInteger)
    unique_media_played: Mapped[int | None] = mapped_column(sa.BigInteger)
    unique_media_played_100: Mapped[int | None] = mapped_column(sa.BigInteger)
    clicks: Mapped[list] = mapped_column(sa.JSON, default=list)  # [{url, clicks, unique_clicks}]


class InsightRequest(TenantOwned, Interactions, Timestamped, db.Model):
    """One multicast request of a delivery and LINE's figures for it (``getMessageEvent``)."""

    __tablename__ = "insight_request"
    __table_args__ = (sa.Index("ix_insight_request_due", "clinic_id", "next_sync_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(sa.ForeignKey("delivery.id", ondelete="CASCADE"), index=True)
    chunk_id: Mapped[int] = mapped_column(sa.ForeignKey("delivery_chunk.id", ondelete="CASCADE"), unique=True)
    request_id: Mapped[str] = mapped_column(sa.String(64))
    sent_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(16), default=RequestStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    synced_at: Mapped[datetime | None] = mapped_column()
    next_sync_at: Mapped[datetime | None] = mapped_column()  # None: no more syncing


class DeliveryInsight(TenantOwned, Interactions, Timestamped, db.Model):
    """Per delivery: LINE's figures summed over its requests, and the blocks that followed it.

    ``partial`` says some requests' figures were withheld, so a sum is a lower bound.
    """

    __tablename__ = "delivery_insight"
    __table_args__ = (sa.Index("ix_delivery_insight_recent", "clinic_id", "sent_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(sa.ForeignKey("delivery.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default="")
    sent_at: Mapped[datetime | None] = mapped_column()
    reached: Mapped[int] = mapped_column(default=0)  # recipients LINE accepted
    scenario_id: Mapped[int | None] = mapped_column()
    step_id: Mapped[int | None] = mapped_column()
    segment_key: Mapped[str | None] = mapped_column(sa.String(32))
    unit: Mapped[str | None] = mapped_column(sa.String(30))
    partial: Mapped[bool] = mapped_column(default=False)
    requests_total: Mapped[int] = mapped_column(default=0)
    requests_synced: Mapped[int] = mapped_column(default=0)
    synced_at: Mapped[datetime | None] = mapped_column()
    blocks_24h: Mapped[int] = mapped_column(default=0)
    blocks_72h: Mapped[int] = mapped_column(default=0)  # includes the 24 h ones


class InsightUnit(TenantOwned, Interactions, Timestamped, db.Model):
    """An aggregation unit (``customAggregationUnits``) used in a month, and its figures that month.

    The rows of a month are also the ledger of LINE's monthly cap on unit names.
    """

    __tablename__ = "insight_unit"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "month", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(sa.String(6))  # yyyyMM, Japan time
    name: Mapped[str] = mapped_column(sa.String(30))
    kind: Mapped[str] = mapped_column(sa.String(16))  # step | segment | delivery
    scenario_id: Mapped[int | None] = mapped_column()
    step_id: Mapped[int | None] = mapped_column()
    segment_key: Mapped[str | None] = mapped_column(sa.String(32))
    delivery_id: Mapped[int | None] = mapped_column()
    last_used_at: Mapped[datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    synced_at: Mapped[datetime | None] = mapped_column()
    next_sync_at: Mapped[datetime | None] = mapped_column()


class InsightDaily(TenantOwned, Timestamped, db.Model):
    """LINE's account figures for one Japan day (followers API and message deliveries API)."""

    __tablename__ = "insight_daily"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date)
    followers_status: Mapped[str] = mapped_column(sa.String(16), default="")
    followers: Mapped[int | None] = mapped_column(sa.BigInteger)  # added ever, as of the day
    targeted_reaches: Mapped[int | None] = mapped_column(sa.BigInteger)
    blocks: Mapped[int | None] = mapped_column(sa.BigInteger)  # blocking as of the day
    deliveries_status: Mapped[str] = mapped_column(sa.String(16), default="")
    deliveries: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # LINE's keys -> count or None
    synced_at: Mapped[datetime | None] = mapped_column()


class InsightDemographic(TenantOwned, Timestamped, db.Model):
    """A snapshot of LINE's friend demographics (percentages per gender, age, area, OS, tenure)."""

    __tablename__ = "insight_demographic"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "taken_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    taken_on: Mapped[date] = mapped_column(sa.Date)
    available: Mapped[bool] = mapped_column(default=False)
    tiles: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class BlockAttribution(TenantOwned, db.Model):
    """One block (unfollow) and the delivery it followed within 72 hours (the last one received)."""

    __tablename__ = "block_attribution"
    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "friend_id", "blocked_at"),
        sa.Index("ix_block_attribution_delivery", "clinic_id", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    friend_id: Mapped[int] = mapped_column()
    blocked_at: Mapped[datetime] = mapped_column()
    delivery_id: Mapped[int] = mapped_column(sa.ForeignKey("delivery.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column()
    within_24h: Mapped[bool] = mapped_column(default=False)


# Who blocked after which send is the patient's data; the per-delivery counters hold no person.
patient_table("block_attribution", keys=("friend_id",), erase=DELETE, section="insights")
