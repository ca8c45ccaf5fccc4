"""LINE plans (platform data), each clinic's plan, and the durable monthly and daily counts."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class LinePlan(Timestamped, db.Model):
    """One of LINE's official-account plans, loaded from saas/quota/plans.yaml (editable data).

    ``extra_price_tiers`` is a list of ``{"up_to": <monthly total or null>, "yen": <per message>}``
    ordered by ``up_to``: a message that is the n-th of the month costs the yen of the first tier
    with ``up_to >= n``.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    monthly_fee_yen: Mapped[int] = mapped_column(default=0)
    free_messages: Mapped[int] = mapped_column(default=0)
    allows_extra: Mapped[bool] = mapped_column(default=False)
    extra_price_tiers: Mapped[list] = mapped_column(sa.JSON, default=list)
    revised_on: Mapped[date | None] = mapped_column()
    notes: Mapped[str] = mapped_column(sa.Text, default="")


class ClinicPlan(TenantOwned, Timestamped, db.Model):
    """The LINE plan a clinic is on, and the cap on additional messages set in OA Manager."""

    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_code: Mapped[str] = mapped_column(sa.String(32), default="free")
    extra_messages_allowed: Mapped[bool] = mapped_column(default=False)
    extra_messages_cap: Mapped[int | None] = mapped_column()  # None: no cap of ours (LINE's own applies)


class MessageUsage(TenantOwned, Timestamped, db.Model):
    """Billable messages reserved by a clinic in one month (Japan time): the durable count."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(sa.String(7))  # "2025-07"
    used: Mapped[int] = mapped_column(default=0)
    line_reported: Mapped[int | None] = mapped_column()
    reconciled_at: Mapped[datetime | None] = mapped_column()


class MessageUsageDay(TenantOwned, db.Model):
    """Billable messages per day (Japan time), for the usage chart and the projection."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column()
    used: Mapped[int] = mapped_column(default=0)


class QuotaReservation(TenantOwned, Timestamped, db.Model):
    """One send's reservation: what it asked for, what it got, what it gave back."""

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(sa.String(7))
    day: Mapped[date] = mapped_column()
    requested: Mapped[int] = mapped_column()
    granted: Mapped[int] = mapped_column()
    released: Mapped[int] = mapped_column(default=0)
    purpose: Mapped[str] = mapped_column(sa.String(200), default="")
    # Marks the grant in Redis until this row is committed; a grant whose row never came is given back.
    token: Mapped[str | None] = mapped_column(sa.String(36), unique=True)
