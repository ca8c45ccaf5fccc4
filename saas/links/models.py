"""Tracked short links and their clicks (see the package docstring for who writes and reads them)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import BigId, utcnow
from saas.extensions import db
from saas.privacy.coverage import KEEP, patient_table
from saas.tenancy.scoping import TenantOwned


class TrackedLink(TenantOwned, db.Model):
    """One short code standing for one URL we rewrote: per (delivery, URL, recipient), per
    (delivery, URL) when the delivery counts per link only, or per (rich menu, URL)."""

    __table_args__ = (
        sa.Index("ix_tracked_link_clinic_delivery", "clinic_id", "delivery_id"),
        sa.Index("ix_tracked_link_clinic_rich_menu", "clinic_id", "rich_menu_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(24), unique=True)  # the redirect's only lookup
    url: Mapped[str] = mapped_column(sa.Text)
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    rich_menu_id: Mapped[int | None] = mapped_column(BigId)
    friend_id: Mapped[int | None] = mapped_column(BigId)  # the recipient; None: shared by everybody
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinkClick(TenantOwned, db.Model):
    """One counted tap on a tracked link (previews and prefetches are not counted).

    ``friend_id`` is the link's recipient, not necessarily who tapped: a forwarded link counts
    for the friend it was sent to, so unique counts stay once per recipient.
    """

    __table_args__ = (
        sa.Index("ix_link_click_clinic_delivery", "clinic_id", "delivery_id", "link_id"),
        sa.Index("ix_link_click_clinic_friend", "clinic_id", "friend_id", "clicked_at"),
        sa.Index("ix_link_click_clinic_time", "clinic_id", "clicked_at"),
        sa.Index("ix_link_click_clinic_link", "clinic_id", "link_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    link_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("tracked_link.id", ondelete="CASCADE"))
    friend_id: Mapped[int | None] = mapped_column(BigId)
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    clicked_at: Mapped[datetime] = mapped_column(default=utcnow)


_KEPT = "ids, the URL sent and times only; the friend row itself is anonymised, so clicks stay counted"
patient_table("tracked_link", keys=("friend_id",), erase=KEEP, section="tracked_links", why=_KEPT)
patient_table("link_click", keys=("friend_id",), erase=KEEP, section="link_clicks", why=_KEPT)
