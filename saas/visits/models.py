"""One row per friend and visit day, with where it came from."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import utcnow
from saas.extensions import db
from saas.privacy.coverage import DELETE, patient_table
from saas.tenancy.scoping import TenantOwned


class VisitSource(enum.StrEnum):
    IMPORT = "import"  # the CSV of the clinic's reception system
    DESK = "desk"  # recorded by staff on the friend's page
    FORM = "form"  # a date the patient gave in a form
    BOOKING = "booking"  # a booking staff marked 来院
    CARD = "card"  # a shop-card stamp at reception (one a visit day)


class Visit(TenantOwned, db.Model):
    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "friend_id", "visited_on"),  # one visit a day; re-imports add nothing
        sa.Index("ix_visit_clinic_day", "clinic_id", "visited_on", "friend_id"),  # segment and recall scans
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"))
    visited_on: Mapped[date] = mapped_column(sa.Date)
    source: Mapped[str] = mapped_column(sa.String(16), default=VisitSource.DESK)
    staff_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


patient_table("visit", keys=("friend_id",), erase=DELETE, section="visits")
