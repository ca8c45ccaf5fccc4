"""The inbox's state of each friend's conversation, and a record of every staff send."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped, utcnow
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


class Conversation(TenantOwned, Timestamped, db.Model):
    """Status, responder and read marker of one friend's chat (created when staff first act).

    A friend without a row is an open conversation nobody has read. The read marker is per
    clinic: a message read by one responder is read for the team.
    """

    __table_args__ = (sa.UniqueConstraint("clinic_id", "friend_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=ConversationStatus.OPEN, index=True)
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    assignee_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"), index=True)
    last_read_message_id: Mapped[int] = mapped_column(default=0)


class ChatSend(TenantOwned, db.Model):
    """One message staff sent from the inbox: how (reply/push), by whom, and its retry key."""

    id: Mapped[int] = mapped_column(primary_key=True)
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(sa.ForeignKey("message.id", ondelete="CASCADE"), index=True)
    sender_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    via: Mapped[str] = mapped_column(sa.String(8))
    retry_key: Mapped[str | None] = mapped_column(sa.String(64))
    reservation_id: Mapped[int | None] = mapped_column()
    state: Mapped[str] = mapped_column(sa.String(16), default="sending")  # sending, sent, failed
    error: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
