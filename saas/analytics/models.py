"""Analytics roll-ups (one row per clinic and Japan day, per inflow source and day) and conversions.

Pages read only these tables. Jobs keep them: a commit that stores a follow, block, booking,
redemption, form answer, stamp or delivery marks its (clinic, day) dirty and a minutely job
recomputes those days from the raw rows (see ``saas.analytics.rollup``); a nightly catch-up recomputes the last days
of every clinic, so a missed mark heals by morning. Recomputing, not adding, makes every job safe
to run twice.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import BigId, Timestamped, utcnow
from saas.extensions import db
from saas.privacy.coverage import KEEP, patient_table
from saas.tenancy.scoping import TenantOwned

DEFAULT_ATTRIBUTION_DAYS = 7
MAX_ATTRIBUTION_DAYS = 90

# The counters of a clinic's day, in the order the CSV export lists them.
CLINIC_DAY_COUNTERS = (
    "follows",
    "blocks",
    "friends_total",
    "messages_sent",
    "deliveries",
    "bookings",
    "redemptions",
    "form_answers",
    "stamps",
    "conversions",
    "failed_sends",
    "clicks",
    "clicked_conversions",
)


def _counter() -> Mapped[int]:
    return mapped_column(default=0, server_default="0")


class ClinicDay(TenantOwned, db.Model):
    """What happened at one clinic on one Japan day; ``friends_total`` is the count at the day's end."""

    __tablename__ = "analytics_clinic_day"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "day", name="uq_analytics_clinic_day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column()
    follows: Mapped[int] = _counter()
    blocks: Mapped[int] = _counter()
    friends_total: Mapped[int] = _counter()
    messages_sent: Mapped[int] = _counter()
    deliveries: Mapped[int] = _counter()
    bookings: Mapped[int] = _counter()
    redemptions: Mapped[int] = _counter()
    form_answers: Mapped[int] = _counter()
    stamps: Mapped[int] = _counter()
    conversions: Mapped[int] = _counter()
    failed_sends: Mapped[int] = _counter()  # recipients the clinic's deliveries started that day failed to reach
    clicks: Mapped[int] = _counter()  # taps on the clinic's tracked links that day (previews not counted)
    clicked_conversions: Mapped[int] = _counter()  # conversions that day attributed to a clicked delivery
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceDay(TenantOwned, db.Model):
    """Follows, blocks and bookings of the friends an inflow source brought, on one Japan day."""

    __tablename__ = "analytics_source_day"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "source_id", "day", name="uq_analytics_source_day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[int] = mapped_column()  # 0: friends without a tracked source
    day: Mapped[date] = mapped_column()
    follows: Mapped[int] = _counter()
    blocks: Mapped[int] = _counter()
    bookings: Mapped[int] = _counter()


class DeliveryClickDay(TenantOwned, db.Model):
    """Taps on one delivery's tracked links on one Japan day, and the recipients they came from."""

    __tablename__ = "analytics_delivery_click_day"
    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "delivery_id", "day", name="uq_analytics_delivery_click_day"),
        sa.Index("ix_analytics_delivery_click_day_day", "clinic_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigId)
    day: Mapped[date] = mapped_column()
    clicks: Mapped[int] = _counter()
    # distinct recipients whose links were tapped that day (per-friend links only); a friend who taps on
    # two days is in both rows, so never sum it over days: links.services.unique_clickers counts them once
    friends: Mapped[int] = _counter()


class ClickHour(TenantOwned, db.Model):
    """Taps on a clinic's tracked links in one Japan hour (``hour`` 0-23 of ``day``): the timing heatmap's clicks."""

    __tablename__ = "analytics_click_hour"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "day", "hour", name="uq_analytics_click_hour"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column()
    hour: Mapped[int] = mapped_column(sa.SmallInteger)
    clicks: Mapped[int] = _counter()


class AnalyticsSettings(TenantOwned, Timestamped, db.Model):
    """A clinic's analytics choices: how long after a message a conversion still counts for it."""

    __tablename__ = "analytics_settings"
    __table_args__ = (sa.UniqueConstraint("clinic_id", name="uq_analytics_settings_clinic"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attribution_days: Mapped[int] = mapped_column(default=DEFAULT_ATTRIBUTION_DAYS)


class ConversionKind:
    BOOKING = "booking"
    REDEMPTION = "redemption"
    FORM_ANSWER = "form_answer"
    STAMP = "stamp"

    ALL = (BOOKING, REDEMPTION, FORM_ANSWER, STAMP)


class Conversion(TenantOwned, db.Model):
    """A booking, redemption, form answer or stamp and the messages it is attributed to, stored when it happened.

    ``clicked_delivery_id``: the delivery whose link the friend clicked last within the clinic's
    window before it; ``received_delivery_id``: the last delivery the friend received within it.
    Either may be empty; the row exists for every conversion of a known friend.
    """

    __tablename__ = "analytics_conversion"
    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "kind", "ref_id", name="uq_analytics_conversion_ref"),
        sa.Index("ix_analytics_conversion_clicked", "clinic_id", "clicked_delivery_id"),
        sa.Index("ix_analytics_conversion_received", "clinic_id", "received_delivery_id"),
        sa.Index("ix_analytics_conversion_time", "clinic_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    ref_id: Mapped[int] = mapped_column(BigId)
    friend_id: Mapped[int | None] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column()
    window_days: Mapped[int] = mapped_column()
    clicked_delivery_id: Mapped[int | None] = mapped_column()
    clicked_at: Mapped[datetime | None] = mapped_column()
    received_delivery_id: Mapped[int | None] = mapped_column()
    received_at: Mapped[datetime | None] = mapped_column()


patient_table(
    "analytics_conversion",
    keys=("friend_id",),
    erase=KEEP,
    section="analytics_conversions",
    why="ids and times only (which send came before a booking or a coupon use); the friend is anonymised, counts stay",
)
