"""Friends (patients who added the clinic on LINE), their tags and their conversation."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.common import BigId, Timestamped, utcnow
from saas.crypto import EncryptedText
from saas.extensions import db
from saas.friends import attribute_rows
from saas.tenancy.scoping import TenantOwned


class FriendStatus(enum.StrEnum):
    FOLLOWING = "following"
    BLOCKED = "blocked"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


# JSONB on Postgres (indexable by GIN, containment queries); JSON text on SQLite.
ATTRIBUTES_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")


class Friend(TenantOwned, Timestamped, db.Model):
    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "line_user_id"),
        # Led by clinic_id so a clinic's list and segment filters never read other clinics' entries.
        sa.Index("ix_friend_recent", "clinic_id", "followed_at", "id"),
        sa.Index("ix_friend_clinic_status", "clinic_id", "status"),
        sa.Index("ix_friend_clinic_last_message", "clinic_id", "last_message_at"),
        sa.Index("ix_friend_clinic_inflow", "clinic_id", "inflow_source_id"),
        sa.Index("ix_friend_clinic_blocked", "clinic_id", "blocked_at"),  # the dashboard's blocks per day
        # Postgres only (SQLite's rowid indexes cover it already): segment counts read status and
        # consent from the index alone (index-only scans); attribute equalities read FriendAttribute.
        sa.Index(
            "ix_friend_audience",
            "clinic_id",
            "id",
            postgresql_include=["status", "consent_marketing", "consent_booking"],
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    line_user_id: Mapped[str] = mapped_column(sa.String(64))
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")
    picture_url: Mapped[str | None] = mapped_column(sa.String(1000))
    language: Mapped[str | None] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default=FriendStatus.FOLLOWING)
    followed_at: Mapped[datetime | None] = mapped_column()
    blocked_at: Mapped[datetime | None] = mapped_column()
    last_message_at: Mapped[datetime | None] = mapped_column()
    inflow_source_id: Mapped[int | None] = mapped_column()
    # Marketing waits for the patient's yes; booking reminders serve a booking the patient made.
    consent_marketing: Mapped[bool] = mapped_column(default=False)
    consent_booking: Mapped[bool] = mapped_column(default=True)  # リマインダー (booking and recall reminders)
    attributes: Mapped[dict] = mapped_column(ATTRIBUTES_TYPE, default=dict)
    # The newest reply token (free replies from the chat inbox while it is valid).
    reply_token: Mapped[str | None] = mapped_column(sa.String(255))
    reply_token_expires_at: Mapped[datetime | None] = mapped_column()

    tags: Mapped[list[Tag]] = relationship(secondary="friend_tag", order_by="Tag.name", viewonly=True)

    @property
    def is_following(self) -> bool:
        return self.status == FriendStatus.FOLLOWING

    @property
    def usable_reply_token(self) -> str | None:
        expires = self.reply_token_expires_at
        return self.reply_token if self.reply_token and expires and expires > utcnow() else None


class FriendAttribute(TenantOwned, db.Model):
    """One text attribute of a friend, written by triggers on ``friend`` (see attribute_rows)."""

    __tablename__ = "friend_attribute"
    __table_args__ = (sa.Index("ix_friend_attribute_friend", "friend_id"),)

    # The primary key is the segment filter's covering index: clinic, key, value -> friends.
    clinic_id: Mapped[int] = mapped_column(sa.ForeignKey("clinic.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    friend_id: Mapped[int] = mapped_column(primary_key=True)  # no foreign key: the delete trigger removes it


attribute_rows.listen(db.metadata)


class Tag(TenantOwned, Timestamped, db.Model):
    __table_args__ = (sa.UniqueConstraint("clinic_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(60))
    color: Mapped[str] = mapped_column(sa.String(16), default="green")


class FriendTag(TenantOwned, db.Model):
    """A tag on a friend (a model, not a bare table, so the tenant filter covers it)."""

    __tablename__ = "friend_tag"
    __table_args__ = (
        sa.UniqueConstraint("friend_id", "tag_id"),
        sa.Index("ix_friend_tag_clinic_tag", "clinic_id", "tag_id", "friend_id"),  # segment tag filters
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    tag_id: Mapped[int] = mapped_column(sa.ForeignKey("tag.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(TenantOwned, db.Model):
    """One message of a friend's conversation, in either direction."""

    __table_args__ = (
        sa.Index("ix_message_conversation", "clinic_id", "friend_id", "id"),  # a conversation, keyset-paged
        sa.Index("ix_message_clinic_time", "clinic_id", "created_at", "direction"),  # charts (index-only), retention
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(sa.String(4))
    kind: Mapped[str] = mapped_column(sa.String(32))  # text, image, sticker, postback, flex ...
    text: Mapped[str] = mapped_column(sa.Text, default="")
    payload: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    line_message_id: Mapped[str | None] = mapped_column(sa.String(64))
    # Indexed: handlers look up an event's messages, and purging old events nulls these.
    webhook_event_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("webhook_event.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    via: Mapped[str | None] = mapped_column(sa.String(8))  # outgoing: "reply" (free) or "push" (counted)
    unsent_at: Mapped[datetime | None] = mapped_column()  # the patient unsent it: a tombstone, content gone
    media: Mapped[MessageMedia | None] = relationship(viewonly=True, uselist=False)

    @property
    def is_unsent(self) -> bool:
        return self.unsent_at is not None


class MediaState(enum.StrEnum):
    PENDING = "pending"
    STORED = "stored"
    FAILED = "failed"  # LINE did not give the content (expired, gone); ``error`` says why
    TOO_LARGE = "too_large"


class MessageMedia(TenantOwned, db.Model):
    """The image, video, audio or file of a patient's message, fetched from LINE and kept encrypted."""

    __table_args__ = (sa.UniqueConstraint("message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("message.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(sa.String(16), default=MediaState.PENDING)
    content_type: Mapped[str] = mapped_column(sa.String(100), default="application/octet-stream")
    size: Mapped[int] = mapped_column(default=0)
    file_name: Mapped[str] = mapped_column(sa.String(255), default="")
    # Base64 of the bytes, as a Fernet token (rotated by ``flask rotate-encryption`` like every secret).
    content: Mapped[str | None] = mapped_column(EncryptedText, deferred=True)
    error: Mapped[str] = mapped_column(sa.Text, default="")
    fetched_at: Mapped[datetime | None] = mapped_column()


class ConsentChange(TenantOwned, db.Model):
    """One change of a friend's consent: who changed it (patient in LINE, staff with a reason), when."""

    __table_args__ = (sa.Index("ix_consent_change_friend", "clinic_id", "friend_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(16))  # marketing / reminders
    granted: Mapped[bool] = mapped_column()
    changed_by: Mapped[str] = mapped_column(sa.String(16))  # patient / staff / import
    staff_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(sa.String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
