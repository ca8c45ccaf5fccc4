"""Rich menu layouts of a clinic and the per-clinic links their areas may point at."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned

SIZES = {"full": (2500, 1686), "half": (2500, 843)}


class RichMenu(TenantOwned, Timestamped, db.Model):
    """A layout: areas (bounds, label, action) on a full or half size menu.

    ``areas`` items: ``{"x","y","width","height","label","action": {"type": "uri"|"postback"|
    "message"|"richmenuswitch", "uri"|"data"|"text"|"richMenuAliasId": ...}}``; action values
    may use bindings such as ``{{clinic.booking_url}}`` resolved when deployed.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    size: Mapped[str] = mapped_column(sa.String(8), default="full")
    chat_bar_text: Mapped[str] = mapped_column(sa.String(14), default="メニュー")
    areas: Mapped[list] = mapped_column(sa.JSON, default=list)
    image: Mapped[bytes | None] = mapped_column(sa.LargeBinary)  # uploaded; None = rendered from the layout
    image_type: Mapped[str] = mapped_column(sa.String(20), default="")
    is_default: Mapped[bool] = mapped_column(default=False)
    segment_tag_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tag.id", ondelete="SET NULL"))
    alias_id: Mapped[str] = mapped_column(sa.String(32), default="")  # for richmenuswitch tabs
    line_rich_menu_id: Mapped[str | None] = mapped_column(sa.String(80))
    deployed_at: Mapped[datetime | None] = mapped_column()

    @property
    def dimensions(self) -> tuple[int, int]:
        return SIZES[self.size]


class MenuLinks(TenantOwned, Timestamped, db.Model):
    """URLs that rich menu areas bind to (採用情報, オンライン診療 — often the same for every
    branch of a medical corporation — and an access/map page)."""

    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recruitment_url: Mapped[str] = mapped_column(sa.String(500), default="")
    online_consultation_url: Mapped[str] = mapped_column(sa.String(500), default="")
    access_url: Mapped[str] = mapped_column(sa.String(500), default="")


class OrganizationLinks(Timestamped, db.Model):
    """Group-wide 採用情報 / オンライン診療 URLs every branch's menu uses unless the clinic sets its own.

    Keyed by organization, so not TenantOwned: organization admins edit it outside any clinic.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organization.id", ondelete="CASCADE"), unique=True, index=True
    )
    recruitment_url: Mapped[str] = mapped_column(sa.String(500), default="")
    online_consultation_url: Mapped[str] = mapped_column(sa.String(500), default="")
