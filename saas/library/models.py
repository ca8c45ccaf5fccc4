"""Library sets and items (owned by the platform, an agency or an organization) and clinic overrides.

Sets and items are not clinic-owned, so they are not TenantOwned: who may see them follows
from the clinic's agency and organization (see saas/library/services.py). A clinic's own
changes live in ClinicLibraryOverride, which is.
"""

from __future__ import annotations

import enum

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class Level(enum.StrEnum):
    PLATFORM = "platform"
    AGENCY = "agency"
    ORGANIZATION = "organization"
    CLINIC = "clinic"


LEVEL_LABELS = {
    Level.PLATFORM: _l("標準（Tsunagu）"),
    Level.AGENCY: _l("代理店"),
    Level.ORGANIZATION: _l("法人"),
    Level.CLINIC: _l("このクリニック"),
}
LEVEL_RANK = {Level.PLATFORM: 0, Level.AGENCY: 1, Level.ORGANIZATION: 2, Level.CLINIC: 3}


class SetKind(enum.StrEnum):
    FAQ = "faq"
    TEMPLATE = "template"
    SCENARIO = "scenario"  # step delivery scenarios (body: a ScenarioSpec in YAML, see saas/steps)


def owner_key(level: str, owner_id: int | None = None) -> str:
    """'platform', 'agency:3' or 'organization:7': one string so it fits a unique constraint."""
    return str(level) if level == Level.PLATFORM else f"{level}:{owner_id}"


class LibrarySet(Timestamped, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(80), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default=SetKind.FAQ)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    owner: Mapped[str] = mapped_column(sa.String(40), default=Level.PLATFORM)  # owner_key of the set

    items: Mapped[list[LibraryItem]] = relationship(back_populates="library_set", cascade="all, delete-orphan")


class LibraryItem(Timestamped, db.Model):
    """One FAQ or template at one level; a lower level's item with the same key overrides it."""

    __table_args__ = (sa.UniqueConstraint("set_id", "item_key", "owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(sa.ForeignKey("library_set.id", ondelete="CASCADE"), index=True)
    item_key: Mapped[str] = mapped_column(sa.String(80))
    owner: Mapped[str] = mapped_column(sa.String(40), default=Level.PLATFORM, index=True)
    position: Mapped[int] = mapped_column(default=0)
    title: Mapped[str] = mapped_column(sa.String(200))
    category: Mapped[str] = mapped_column(sa.String(80), default="")
    keywords: Mapped[list] = mapped_column(sa.JSON, default=list)
    body: Mapped[str] = mapped_column(sa.Text, default="")  # text with {{variables}}
    computed: Mapped[str] = mapped_column(sa.String(32), default="")

    library_set: Mapped[LibrarySet] = relationship(back_populates="items")


class ClinicLibraryOverride(TenantOwned, Timestamped, db.Model):
    """A clinic's own version of a library item (or the item switched off)."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "set_id", "item_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(sa.ForeignKey("library_set.id", ondelete="CASCADE"), index=True)
    item_key: Mapped[str] = mapped_column(sa.String(80))
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    keywords: Mapped[list] = mapped_column(sa.JSON, default=list)
    body: Mapped[str] = mapped_column(sa.Text, default="")
    disabled: Mapped[bool] = mapped_column(default=False)


class LibrarySubscription(TenantOwned, Timestamped, db.Model):
    """The clinic answers patients with this FAQ set."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "set_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(sa.ForeignKey("library_set.id", ondelete="CASCADE"), index=True)
