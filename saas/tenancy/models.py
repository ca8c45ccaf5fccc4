"""Agencies, organizations (医療法人 or independent owners) and clinics, the tenants."""

from __future__ import annotations

import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.common import Timestamped, random_key
from saas.crypto import EncryptedText
from saas.extensions import db


class OrganizationKind(enum.StrEnum):
    MEDICAL_CORPORATION = "medical_corporation"
    INDEPENDENT = "independent"


class Agency(Timestamped, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))

    organizations: Mapped[list[Organization]] = relationship(back_populates="agency", order_by="Organization.name")


class Organization(Timestamped, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(32), default=OrganizationKind.INDEPENDENT)
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agency.id"), index=True)

    agency: Mapped[Agency | None] = relationship(back_populates="organizations")
    clinics: Mapped[list[Clinic]] = relationship(back_populates="organization", order_by="Clinic.name")


class Clinic(Timestamped, db.Model):
    """The tenant: one LINE channel and everything that hangs off it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    specialty: Mapped[str] = mapped_column(sa.String(100), default="")
    phone: Mapped[str] = mapped_column(sa.String(40), default="")
    address: Mapped[str] = mapped_column(sa.String(300), default="")
    access: Mapped[str] = mapped_column(sa.Text, default="")
    parking: Mapped[str] = mapped_column(sa.Text, default="")
    website_url: Mapped[str] = mapped_column(sa.String(500), default="")
    logo_url: Mapped[str] = mapped_column(sa.String(500), default="")
    timezone: Mapped[str] = mapped_column(sa.String(64), default="Asia/Tokyo")

    webhook_key: Mapped[str] = mapped_column(sa.String(64), unique=True, default=random_key)
    line_channel_id: Mapped[str | None] = mapped_column(sa.String(32))
    line_channel_secret: Mapped[str | None] = mapped_column(EncryptedText)
    line_access_token: Mapped[str | None] = mapped_column(EncryptedText)
    line_bot_user_id: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    line_basic_id: Mapped[str | None] = mapped_column(sa.String(40))

    organization: Mapped[Organization] = relationship(back_populates="clinics")

    @property
    def agency_id(self) -> int | None:
        return self.organization.agency_id

    @property
    def line_connected(self) -> bool:
        return bool(self.line_channel_secret and self.line_access_token)
