"""Friend fields a clinic defines, and their values as typed rows (indexable on any database).

A value row holds one of ``text``, ``number`` or ``day`` according to the field's kind; a
multi-choice field has one row per chosen option. Segments then filter with plain indexed
comparisons (``field_id = ? AND number >= ?``) on SQLite and Postgres alike.
"""

from __future__ import annotations

import enum
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class FieldKind(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"


class FriendField(TenantOwned, Timestamped, db.Model):
    __table_args__ = (sa.UniqueConstraint("clinic_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(40))  # used in templates: {{friend.fields.<key>}}
    label: Mapped[str] = mapped_column(sa.String(80))
    kind: Mapped[str] = mapped_column(sa.String(16), default=FieldKind.TEXT)
    choices: Mapped[list] = mapped_column(sa.JSON, default=list)
    position: Mapped[int] = mapped_column(default=0)

    @property
    def has_choices(self) -> bool:
        return self.kind in (FieldKind.CHOICE, FieldKind.MULTI_CHOICE)


class FriendFieldValue(TenantOwned, db.Model):
    __table_args__ = (
        sa.Index("ix_field_value_friend", "clinic_id", "friend_id", "field_id"),
        # Led by clinic_id (the tenant filter) and ending in friend_id: a segment's field
        # condition is answered from the index alone.
        sa.Index("ix_field_value_text", "clinic_id", "field_id", "text", "friend_id"),
        sa.Index("ix_field_value_number", "clinic_id", "field_id", "number", "friend_id"),
        sa.Index("ix_field_value_day", "clinic_id", "field_id", "day", "friend_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"))
    field_id: Mapped[int] = mapped_column(sa.ForeignKey("friend_field.id", ondelete="CASCADE"))
    text: Mapped[str | None] = mapped_column(sa.String(500))
    number: Mapped[float | None] = mapped_column(sa.Float)
    day: Mapped[date | None] = mapped_column(sa.Date)
