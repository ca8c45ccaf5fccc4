"""Conversation counters kept as messages are stored: newest message, unread count, reopening.

Every stored :class:`~saas.friends.models.Message` updates its friend's conversation row in the
same transaction with one atomic upsert (``INSERT ... ON CONFLICT DO UPDATE``), so concurrent
webhook workers never lose an increment and no page has to count a clinic's messages. A
patient's message reopens a waiting or resolved conversation (it needs staff again).
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from saas.common import utcnow
from saas.friends.models import Direction, Message
from saas.inbox.models import Conversation, ConversationStatus

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_TOUCHED = "inbox_counters_touched"  # session.info key: friends whose conversation changed in SQL


def _newer(column, incoming):
    return sa.case((sa.or_(column.is_(None), column < incoming), incoming), else_=column)


_COLUMNS = (
    "clinic_id",
    "friend_id",
    "status",
    "status_changed_at",
    "last_read_message_id",
    "last_message_id",
    "last_message_at",
    "unread_count",
    "created_at",
    "updated_at",
)


@functools.cache
def upsert_statement(dialect: str):
    """The one statement that folds a new message into its conversation row (values bound at
    execution). Built once per dialect: building it costs more than running it."""
    return _folded(_INSERTS[dialect](Conversation).values({name: sa.bindparam(name) for name in _COLUMNS}))


def upsert_from_select(dialect: str, columns: list[str], rows: sa.Select):
    """Fold messages stored in bulk (step delivery) into their conversations: ``rows`` gives one
    conversation row per friend (the newest message id and time, no unread count)."""
    return _folded(_INSERTS[dialect](Conversation).from_select(columns, rows))


def _folded(insert):
    table, new = Conversation.__table__.c, insert.excluded
    reopens = new.unread_count > 0
    return insert.on_conflict_do_update(
        index_elements=["clinic_id", "friend_id"],
        set_={
            "last_message_id": _newer(table.last_message_id, new.last_message_id),
            "last_message_at": _newer(table.last_message_at, new.last_message_at),
            "unread_count": table.unread_count + new.unread_count,
            "status_changed_at": sa.case(
                (sa.and_(reopens, table.status != ConversationStatus.OPEN), new.status_changed_at),
                else_=table.status_changed_at,
            ),
            "status": sa.case((reopens, ConversationStatus.OPEN.value), else_=table.status),
            "updated_at": new.updated_at,
        },
    )


def _values(message: Message) -> dict:
    now = utcnow()
    return {
        "clinic_id": message.clinic_id,
        "friend_id": message.friend_id,
        "status": ConversationStatus.OPEN.value,
        "status_changed_at": now,
        "last_read_message_id": 0,
        "last_message_id": message.id,
        "last_message_at": message.created_at or now,
        "unread_count": 1 if message.direction == Direction.IN else 0,
        "created_at": now,
        "updated_at": now,
    }


@event.listens_for(Message, "after_insert")
def _fold_into_conversation(mapper, connection, message: Message) -> None:
    connection.execute(upsert_statement(connection.dialect.name), _values(message))
    session = sa.inspect(message).session
    if session is not None:
        session.info.setdefault(_TOUCHED, set()).add(message.friend_id)


@event.listens_for(Session, "after_flush_postexec")
def _expire_touched(session: Session, flush_context) -> None:
    """Loaded conversation objects must not keep counters the upsert has just changed."""
    touched = session.info.pop(_TOUCHED, None)
    if not touched:
        return
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Conversation) and obj.friend_id in touched:
            session.expire(obj)
