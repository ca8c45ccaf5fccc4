"""The inbox's state of each friend's conversation, and a record of every staff send."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import BigId, Timestamped, utcnow
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class ConversationStatus(enum.StrEnum):
    OPEN = "open"  # 未対応: needs staff
    WAITING = "waiting"  # 返信待ち: staff answered, the patient's turn
    RESOLVED = "resolved"  # 解決済み: the bot answers again


STATUS_LABELS = {
    ConversationStatus.OPEN: _l("未対応"),
    ConversationStatus.WAITING: _l("返信待ち"),
    ConversationStatus.RESOLVED: _l("解決済み"),
}


class Via(enum.StrEnum):
    REPLY = "reply"  # the friend's reply token: free
    PUSH = "push"  # counts against the monthly quota


NOT_RESOLVED = sa.text("status <> 'resolved'")


class Conversation(TenantOwned, Timestamped, db.Model):
    """Status, responder, read marker and counters of one friend's chat.

    Created by the first message either way (or when staff first act). The counters
    (newest message, unread patient messages) are kept by :mod:`saas.inbox.counters` as
    messages are stored, so no page counts a clinic's messages. The read marker is per
    clinic: a message read by one responder is read for the team.
    """

    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "friend_id"),
        # The inbox list, newest first (all / not resolved / by status / by assignee), keyset-paged.
        sa.Index("ix_conversation_recent", "clinic_id", "last_message_id"),
        sa.Index(
            "ix_conversation_recent_active",
            "clinic_id",
            "last_message_id",
            postgresql_where=NOT_RESOLVED,
            sqlite_where=NOT_RESOLVED,
        ),
        sa.Index("ix_conversation_status_recent", "clinic_id", "status", "last_message_id"),
        sa.Index("ix_conversation_assignee_recent", "clinic_id", "assignee_user_id", "last_message_id"),
        # The sidebar badge: conversations waiting for staff, counted from this index alone.
        sa.Index(
            "ix_conversation_unanswered",
            "clinic_id",
            postgresql_where=sa.text("unread_count > 0 AND status <> 'resolved'"),
            sqlite_where=sa.text("unread_count > 0 AND status <> 'resolved'"),
        ),
        # The inbox list's unread ranks, newest first (a few entries even at 100,000 conversations).
        sa.Index(
            "ix_conversation_unread_recent",
            "clinic_id",
            "last_message_id",
            postgresql_where=sa.text("unread_count > 0"),
            sqlite_where=sa.text("unread_count > 0"),
        ),
        # The inbox's "anything new since" poll.
        sa.Index("ix_conversation_changed", "clinic_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=ConversationStatus.OPEN)
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    assignee_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"), index=True)
    last_read_message_id: Mapped[int] = mapped_column(BigId, default=0)
    last_message_id: Mapped[int | None] = mapped_column(BigId)
    last_message_at: Mapped[datetime | None] = mapped_column()
    unread_count: Mapped[int] = mapped_column(default=0, server_default="0")


class ChatSend(TenantOwned, db.Model):
    """One message staff sent from the inbox: how (reply/push), by whom, and its retry key."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("message.id", ondelete="CASCADE"), index=True)
    sender_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    via: Mapped[str] = mapped_column(sa.String(8))
    retry_key: Mapped[str | None] = mapped_column(sa.String(64))
    reservation_id: Mapped[int | None] = mapped_column()
    state: Mapped[str] = mapped_column(sa.String(16), default="sending")  # sending, sent, failed
    error: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
