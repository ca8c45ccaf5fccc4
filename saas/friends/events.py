"""What each LINE webhook event does to the clinic's friends and their conversation.

Called by the webhook worker (``saas.webhooks.jobs``) inside the clinic's tenant scope,
with the stored :class:`~saas.webhooks.models.WebhookEvent` row. Every step is idempotent:
re-running an event finds the friend and the stored messages and does not reply twice.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from saas import line
from saas.extensions import db
from saas.friends import hooks, services
from saas.friends.models import Direction, Friend, Message
from saas.line.errors import LineError

log = logging.getLogger(__name__)


def handle(clinic, event) -> None:
    """Apply one stored webhook event; events of other kinds or sources are ignored."""
    if event.line_user_id is None or (event.payload.get("source") or {}).get("type", "user") != "user":
        return
    handler = _HANDLERS.get(event.event_type)
    if handler is not None:
        handler(clinic, event)


def _friend_for(clinic, event) -> Friend:
    friend, created = services.get_or_create_friend(event.line_user_id)
    if created or not friend.display_name:
        _refresh_profile(clinic, friend)
    services.keep_reply_token(friend, event.reply_token, event.reply_token_expires_at)
    return friend


def _refresh_profile(clinic, friend: Friend) -> None:
    try:
        services.apply_profile(friend, line.client.get_profile(clinic, friend.line_user_id))
    except LineError as exc:  # the friend is still worth keeping without a name
        log.warning("profile of %s not fetched: %s", friend.line_user_id, exc)


def on_follow(clinic, event) -> None:
    friend, _ = services.get_or_create_friend(event.line_user_id)
    services.mark_following(friend, event.occurred_at)
    _refresh_profile(clinic, friend)
    services.keep_reply_token(friend, event.reply_token, event.reply_token_expires_at)
    db.session.commit()
    _reply(clinic, friend, event, hooks.answer_follow(clinic, friend, event.payload))


def on_unfollow(clinic, event) -> None:
    friend, _ = services.get_or_create_friend(event.line_user_id)
    services.mark_blocked(friend, event.occurred_at)
    db.session.commit()


def on_message(clinic, event) -> None:
    friend = _friend_for(clinic, event)
    content = event.payload.get("message") or {}
    _record_incoming(
        friend,
        event,
        kind=str(content.get("type") or "unknown"),
        text=content.get("text") or "",
        payload=content,
        line_message_id=content.get("id"),
    )
    _reply(clinic, friend, event, hooks.answer_message(clinic, friend, event.payload))


def on_postback(clinic, event) -> None:
    friend = _friend_for(clinic, event)
    postback = event.payload.get("postback") or {}
    _record_incoming(friend, event, kind="postback", text=str(postback.get("data") or ""), payload=postback)
    _reply(clinic, friend, event, hooks.answer_postback(clinic, friend, event.payload))


def _already_recorded(event, direction: str) -> bool:
    found = sa.select(Message.id).where(Message.webhook_event_id == event.id, Message.direction == direction)
    return db.session.scalar(found.limit(1)) is not None


def _record_incoming(friend: Friend, event, **fields) -> None:
    if not _already_recorded(event, Direction.IN):
        services.record_message(friend, Direction.IN, webhook_event_id=event.id, created_at=event.occurred_at, **fields)
    db.session.commit()


def _reply(clinic, friend: Friend, event, answer: list[dict] | None) -> None:
    """Send the answer with the event's reply token and keep it in the conversation.

    Commits in every case: responders may have changed state (a hand-off pauses the bot).
    """
    if answer and event.reply_token_usable and not _already_recorded(event, Direction.OUT):
        _send_reply(clinic, friend, event, answer)
    db.session.commit()


def _send_reply(clinic, friend: Friend, event, answer: list[dict]) -> None:
    sent = line.client.reply(clinic, event.reply_token, answer)
    ids = list(sent.message_ids) + [None] * len(answer)
    for message, line_id in zip(answer, ids, strict=False):
        services.record_message(
            friend,
            Direction.OUT,
            kind=str(message.get("type") or "unknown"),
            text=message.get("text") or message.get("altText") or "",
            payload=message,
            line_message_id=line_id,
            webhook_event_id=event.id,
        )
    if friend.reply_token == event.reply_token:
        friend.reply_token, friend.reply_token_expires_at = None, None  # used up


_HANDLERS = {"follow": on_follow, "unfollow": on_unfollow, "message": on_message, "postback": on_postback}
