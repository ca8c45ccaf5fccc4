"""Inflow sources and the scans of their QR codes (each scan, then who it turned out to be)."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped, utcnow
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


def new_token() -> str:
    return secrets.token_urlsafe(12)


class ScanOutcome(enum.StrEnum):
    OPENED = "opened"  # the link was opened; LINE Login not (yet) finished
    PENDING = "pending"  # signed in, not a friend yet: the follow webhook completes it
    NEW_FRIEND = "new_friend"  # became a friend through this source
    VISIT = "visit"  # already a friend (e.g. scanned the poster at the desk)


class InflowSource(TenantOwned, Timestamped, db.Model):
    """A place a patient finds the clinic's LINE (受付ポスター, 診察券, ホームページ ...)."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    token: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_token)
    # On a new friend from this source: tags to add and a deployed rich menu to link.
    tag_ids: Mapped[list] = mapped_column(sa.JSON, default=list)
    rich_menu_id: Mapped[int | None] = mapped_column(sa.ForeignKey("rich_menu.id", ondelete="SET NULL"))
    poster_message: Mapped[str] = mapped_column(sa.String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)


class SourceScan(TenantOwned, db.Model):
    """One opening of a source's link; the LINE user is known once LINE Login comes back."""

    __table_args__ = (
        sa.Index("ix_source_scan_source", "clinic_id", "source_id", "outcome"),
        sa.Index("ix_source_scan_user", "clinic_id", "line_user_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(sa.ForeignKey("inflow_source.id", ondelete="CASCADE"))
    line_user_id: Mapped[str | None] = mapped_column(sa.String(64))
    friend_id: Mapped[int | None] = mapped_column(sa.ForeignKey("friend.id", ondelete="SET NULL"), index=True)
    outcome: Mapped[str] = mapped_column(sa.String(16), default=ScanOutcome.OPENED)
    scanned_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()
