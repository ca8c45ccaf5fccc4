"""Patients' rights under APPI: a copy of everything we hold on a friend, and erasure on request.

Erasure removes the conversation, the raw webhook events and the profile, and keeps an
anonymous tombstone row (status ``erased``) so that follower statistics still count the
person. The audit trail keeps only ids, never the erased content.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import sqlalchemy as sa

from saas.autoreply.models import ConversationState
from saas.common import utcnow
from saas.extensions import db
from saas.fields.models import FriendFieldValue
from saas.friends.models import ConsentChange, Friend, FriendTag, Message, MessageMedia
from saas.inbox.models import ChatSend, Conversation
from saas.webhooks.models import WebhookEvent

ERASED = "erased"
ERASED_NAME = "（削除済み）"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def _events(friend: Friend) -> list[WebhookEvent]:
    return list(
        db.session.scalars(
            sa.select(WebhookEvent).where(WebhookEvent.line_user_id == friend.line_user_id).order_by(WebhookEvent.id)
        )
    )


def _messages(friend: Friend) -> list[Message]:
    return list(db.session.scalars(sa.select(Message).where(Message.friend_id == friend.id).order_by(Message.id)))


def export_data(friend: Friend) -> dict:
    """Everything held about the friend: profile, tags, attributes, messages and webhook events."""
    return {
        "exported_at": _iso(utcnow()),
        "profile": {
            "id": friend.id,
            "line_user_id": friend.line_user_id,
            "display_name": friend.display_name,
            "picture_url": friend.picture_url,
            "language": friend.language,
            "status": friend.status,
            "followed_at": _iso(friend.followed_at),
            "blocked_at": _iso(friend.blocked_at),
            "last_message_at": _iso(friend.last_message_at),
            "consent_marketing": friend.consent_marketing,
            "consent_booking": friend.consent_booking,
        },
        "tags": [tag.name for tag in friend.tags],
        "attributes": dict(friend.attributes or {}) | _field_values(friend),
        "consent_changes": [
            {"at": _iso(c.created_at), "kind": c.kind, "granted": c.granted, "by": c.changed_by, "reason": c.reason}
            for c in db.session.scalars(sa.select(ConsentChange).where(ConsentChange.friend_id == friend.id))
        ],
        "messages": [
            {"at": _iso(m.created_at), "direction": m.direction, "kind": m.kind, "text": m.text, "payload": m.payload}
            for m in _messages(friend)
        ],
        "events": [
            {
                "at": _iso(e.occurred_at),
                "type": e.event_type,
                "webhook_event_id": e.webhook_event_id,
                "payload": e.payload,
            }
            for e in _events(friend)
        ],
    }


def _field_values(friend: Friend) -> dict:
    from saas.fields import services as fields

    return {f"field:{key}": value for key, value in fields.values_by_key(friend).items()}


CSV_COLUMNS = ["section", "at", "direction", "kind", "key", "value"]


def export_csv(data: dict) -> str:
    """The export as one CSV (UTF-8 with BOM for Excel): one row per field, tag, message and event."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for key, value in data["profile"].items():
        writer.writerow(["profile", "", "", "", key, "" if value is None else value])
    for tag in data["tags"]:
        writer.writerow(["tag", "", "", "", "name", tag])
    for key, value in data["attributes"].items():
        writer.writerow(["attribute", "", "", "", key, value])
    for m in data["messages"]:
        writer.writerow(["message", m["at"], m["direction"], m["kind"], "text", m["text"]])
    for e in data["events"]:
        writer.writerow(
            ["event", e["at"], "", e["type"], e["webhook_event_id"], json.dumps(e["payload"], ensure_ascii=False)]
        )
    return out.getvalue()


def erase(friend: Friend) -> dict:
    """Remove the friend's messages, events and profile; keep an anonymous tombstone. Returns counts."""
    their_messages = sa.select(Message.id).where(Message.friend_id == friend.id)
    _delete(sa.delete(MessageMedia).where(MessageMedia.message_id.in_(their_messages)))  # SQLite: no FK cascade
    removed = {
        "messages": _delete(sa.delete(Message).where(Message.friend_id == friend.id)),
        "events": _delete(sa.delete(WebhookEvent).where(WebhookEvent.line_user_id == friend.line_user_id)),
        "tags": _delete(sa.delete(FriendTag).where(FriendTag.friend_id == friend.id)),
    }
    _delete(sa.delete(FriendFieldValue).where(FriendFieldValue.friend_id == friend.id))
    _delete(sa.delete(ConsentChange).where(ConsentChange.friend_id == friend.id))
    _delete(sa.delete(ChatSend).where(ChatSend.friend_id == friend.id))
    _delete(sa.delete(Conversation).where(Conversation.friend_id == friend.id))
    _delete(sa.delete(ConversationState).where(ConversationState.line_user_id == friend.line_user_id))
    _anonymise_elsewhere(friend.line_user_id, f"erased:{friend.id}")
    friend.line_user_id = f"erased:{friend.id}"  # a later follow by the same person starts afresh
    friend.display_name, friend.picture_url, friend.language = ERASED_NAME, None, None
    friend.attributes, friend.reply_token, friend.reply_token_expires_at = {}, None, None
    friend.last_message_at, friend.status = None, ERASED
    friend.consent_marketing = friend.consent_booking = False
    db.session.expire(friend, ["tags"])
    return removed


_HANDLED_HERE = {
    "friend",
    "message",
    "webhook_event",
    "friend_tag",
    "chat_send",
    "conversation",
    "conversation_state",
    "friend_field_value",
    "consent_change",
}
_NAME_COLUMNS = ("patient_name", "display_name")


def _anonymise_elsewhere(line_user_id: str, replacement: str) -> None:
    """Other capabilities' rows that carry the LINE user id (bookings, deliveries...) keep
    their counts but lose the id and any stored patient name."""
    for mapper in db.Model.registry.mappers:
        table = mapper.local_table
        if table.name in _HANDLED_HERE or "line_user_id" not in table.c or "clinic_id" not in table.c:
            continue
        values = {"line_user_id": replacement} | {name: "" for name in _NAME_COLUMNS if name in table.c}
        model = mapper.class_
        with db.session.begin_nested():
            db.session.execute(
                sa.update(model).where(model.line_user_id == line_user_id).values(**values),
                execution_options={"synchronize_session": False},
            )


def _delete(statement) -> int:
    result = db.session.execute(statement, execution_options={"synchronize_session": False})
    return result.rowcount or 0
