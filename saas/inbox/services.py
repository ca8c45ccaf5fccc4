"""Conversations for the inbox: listing with unread counts, assignment, status and the bot pause.

Status is stored when staff change it; a patient's message after that change reopens the
conversation (``effective_status``), so no webhook hook is needed to keep it current.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from saas.auth.models import User
from saas.autoreply import services as autoreply
from saas.autoreply.models import ConversationState
from saas.common import utcnow
from saas.extensions import db
from saas.friends.models import Direction, Friend, Message
from saas.inbox.models import ChatSend, Conversation, ConversationStatus
from saas.tenancy.scoping import tenant_scope

ERASED = "erased"
PER_PAGE = 50


def effective_status():
    """SQL: the stored status, but 'open' again when the patient wrote after it was set."""
    reopened = sa.and_(
        Conversation.status.in_([ConversationStatus.WAITING, ConversationStatus.RESOLVED]),
        Friend.last_message_at > Conversation.status_changed_at,
    )
    return sa.case((reopened, ConversationStatus.OPEN), else_=sa.func.coalesce(Conversation.status, "open"))


def _unread_subquery():
    marker = sa.func.coalesce(Conversation.last_read_message_id, 0)
    return (
        sa.select(Message.friend_id, sa.func.count(Message.id).label("unread"))
        .outerjoin(Conversation, Conversation.friend_id == Message.friend_id)
        .where(Message.direction == Direction.IN, Message.id > marker)
        .group_by(Message.friend_id)
        .subquery()
    )


def _last_message_subquery():
    return sa.select(Message.friend_id, sa.func.max(Message.id).label("last_id")).group_by(Message.friend_id).subquery()


@dataclass(frozen=True)
class InboxFilter:
    mine: bool = False
    unassigned: bool = False
    status: str = ""  # "" = every status but resolved; "all" = everything


@dataclass
class ConversationRow:
    friend: Friend
    conversation: Conversation | None
    status: str
    unread: int
    last_message: Message | None
    urgent_at: object = None  # when the FAQ bot recognised an emergency symptom


def conversations(criteria: InboxFilter, user_id: int, limit: int = PER_PAGE) -> list[ConversationRow]:
    """Friends with messages, newest message first, with status and unread counts."""
    unread, last = _unread_subquery(), _last_message_subquery()
    status = effective_status().label("status")
    unread_count = sa.func.coalesce(unread.c.unread, 0)
    statement = (
        sa.select(Friend, Conversation, status, unread_count, Message, ConversationState.urgent_at)
        .join(last, last.c.friend_id == Friend.id)
        .join(Message, Message.id == last.c.last_id)
        .outerjoin(Conversation, Conversation.friend_id == Friend.id)
        .outerjoin(unread, unread.c.friend_id == Friend.id)
        .outerjoin(
            ConversationState,
            sa.and_(
                ConversationState.clinic_id == Friend.clinic_id, ConversationState.line_user_id == Friend.line_user_id
            ),
        )
        .where(Friend.status != ERASED)
    )
    if criteria.mine:
        statement = statement.where(Conversation.assignee_user_id == user_id)
    if criteria.unassigned:
        statement = statement.where(Conversation.assignee_user_id.is_(None))
    if criteria.status in tuple(ConversationStatus):
        statement = statement.where(effective_status() == criteria.status)
    elif criteria.status != "all":
        statement = statement.where(effective_status() != ConversationStatus.RESOLVED)
    # What needs a person first: emergencies, then unread patient messages, then the newest.
    urgent_first = sa.case((ConversationState.urgent_at.is_not(None), 0), else_=1)
    unread_first = sa.case((unread_count > 0, 0), else_=1)
    statement = statement.order_by(urgent_first, unread_first, last.c.last_id.desc()).limit(limit)
    return [ConversationRow(*row) for row in db.session.execute(statement).all()]


def senders_of(messages: list[Message]) -> dict[int, str]:
    """Who sent each outgoing message: a staff member's name, keyed by message id."""
    ids = [m.id for m in messages if m.direction == Direction.OUT]
    if not ids:
        return {}
    rows = db.session.execute(
        sa.select(ChatSend.message_id, User.name)
        .join(User, User.id == ChatSend.sender_user_id)
        .where(ChatSend.message_id.in_(ids))
    )
    return dict(rows.all())


def urgent_since(friend: Friend):
    """When the bot recognised an emergency in this chat (None when there is none)."""
    state = autoreply.get_state(friend.clinic_id, friend.line_user_id)
    return state.urgent_at if state else None


def status_of(friend: Friend, conversation: Conversation | None) -> str:
    """The effective status of one conversation (same rule as :func:`effective_status`)."""
    if conversation is None:
        return ConversationStatus.OPEN
    reopened = friend.last_message_at and friend.last_message_at > conversation.status_changed_at
    if conversation.status != ConversationStatus.OPEN and reopened:
        return ConversationStatus.OPEN
    return conversation.status


def unread_count(friend: Friend, conversation: Conversation | None) -> int:
    marker = conversation.last_read_message_id if conversation else 0
    statement = sa.select(sa.func.count(Message.id)).where(
        Message.friend_id == friend.id, Message.direction == Direction.IN, Message.id > marker
    )
    return db.session.scalar(statement) or 0


def unanswered_counts(clinic_ids: list[int]) -> dict[int, int]:
    """Per clinic: conversations with unread patient messages that are not resolved (未対応チャット)."""
    with tenant_scope(clinic_ids):
        unread = _unread_subquery()
        rows = db.session.execute(
            sa.select(Friend.clinic_id, sa.func.count(Friend.id))
            .join(unread, unread.c.friend_id == Friend.id)
            .outerjoin(Conversation, Conversation.friend_id == Friend.id)
            .where(Friend.status != ERASED, effective_status() != ConversationStatus.RESOLVED)
            .group_by(Friend.clinic_id)
        )
        return dict(rows.all())


def get_conversation(friend: Friend) -> Conversation | None:
    return db.session.scalars(sa.select(Conversation).where(Conversation.friend_id == friend.id)).first()


def ensure_conversation(friend: Friend) -> Conversation:
    """The friend's conversation row, created (open, unread) on first use."""
    conversation = get_conversation(friend)
    if conversation is None:
        conversation = Conversation(
            friend_id=friend.id, status=ConversationStatus.OPEN, status_changed_at=utcnow(), last_read_message_id=0
        )
        db.session.add(conversation)
        db.session.flush()
    return conversation


def mark_read(friend: Friend) -> Conversation:
    """Everything in the conversation so far is read (for the whole clinic)."""
    conversation = ensure_conversation(friend)
    newest = db.session.scalar(sa.select(sa.func.max(Message.id)).where(Message.friend_id == friend.id)) or 0
    conversation.last_read_message_id = max(conversation.last_read_message_id or 0, newest)
    return conversation


def hand_to_staff(friend: Friend) -> None:
    """A person handles this conversation: the bot stays silent for the friend."""
    autoreply.pause_bot(friend.clinic_id, friend.line_user_id)


def assign(friend: Friend, user_id: int | None) -> Conversation:
    """Give the conversation to a responder (None: nobody). Assigning pauses the bot."""
    conversation = ensure_conversation(friend)
    conversation.assignee_user_id = user_id
    if user_id is not None:
        hand_to_staff(friend)
    return conversation


def set_status(friend: Friend, status: str) -> Conversation:
    """Change the status; resolving gives the conversation back to the bot."""
    if status not in tuple(ConversationStatus):
        raise ValueError(f"unknown status {status!r}")
    conversation = ensure_conversation(friend)
    conversation.status, conversation.status_changed_at = status, utcnow()
    if status == ConversationStatus.RESOLVED:
        autoreply.resume_bot(friend.clinic_id, friend.line_user_id)
    else:
        hand_to_staff(friend)
    return conversation


def bot_paused(friend: Friend) -> bool:
    return autoreply.is_bot_paused(friend.clinic_id, friend.line_user_id)
