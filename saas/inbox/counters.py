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
from saas.extensions import db
from saas.friends import hooks
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


def needs_staff(direction: str, kind: str | None, text: str | None) -> bool:
    """A patient's message needs staff; a button tap the product itself handles (marketing consent,
    a booking step, a scenario's choice) does not, so it neither counts as unread nor reopens."""
    if direction != Direction.IN:
        return False
    return not (kind == "postback" and hooks.postback_handler_for(text or "") is not None)


def _values(message: Message) -> dict:
    unread = needs_staff(message.direction, message.kind, message.text)
    return _row_values(message.clinic_id, message.friend_id, message.id, message.created_at, unread)


def _row_values(clinic_id: int, friend_id: int, message_id: int, created_at, unread: bool) -> dict:
    now = utcnow()
    return {
        "clinic_id": clinic_id,
        "friend_id": friend_id,
        "status": ConversationStatus.OPEN.value,
        "status_changed_at": now,
        "last_read_message_id": 0,
        "last_message_id": message_id,
        "last_message_at": created_at or now,
        "unread_count": 1 if unread else 0,
        "created_at": now,
        "updated_at": now,
    }


def fold_stored(session: Session, messages: list[dict]) -> None:
    """Fold messages stored in bulk (rows with ``id``, ``clinic_id``, ``friend_id``, ``direction``,
    ``created_at``; no mapper event fired for them) into their conversations: one upsert per friend,
    sent as one executemany, as the per-message hook would have left them."""
    rows: dict[tuple[int, int], dict] = {}
    for message in messages:
        key = (message["clinic_id"], message["friend_id"])
        unread = needs_staff(message["direction"], message.get("kind"), message.get("text"))
        values = _row_values(message["clinic_id"], message["friend_id"], message["id"], message["created_at"], unread)
        folded = rows.get(key)
        if folded is None:
            rows[key] = values
            continue
        folded["unread_count"] += values["unread_count"]
        if values["last_message_id"] > folded["last_message_id"]:
            folded["last_message_id"], folded["last_message_at"] = values["last_message_id"], values["last_message_at"]
    if rows:
        connection = session.connection()  # rows of messages the scoped INSERT just stored
        connection.execute(upsert_statement(connection.dialect.name), list(rows.values()))
        session.info.setdefault(_TOUCHED, set()).update(friend_id for _, friend_id in rows)


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


def forget_unread(message: Message) -> None:
    """A patient's message that staff had not read yet was unsent: it no longer waits for them.
    (The message's id orders it against the conversation's read marker.)"""
    if not needs_staff(message.direction, message.kind, message.text):
        return
    db.session.execute(
        sa.update(Conversation)
        .where(
            Conversation.friend_id == message.friend_id,
            Conversation.last_read_message_id < message.id,
            Conversation.unread_count > 0,
        )
        .values(unread_count=Conversation.unread_count - 1, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
