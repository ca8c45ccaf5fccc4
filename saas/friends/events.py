"""What each LINE webhook event does to the clinic's friends and their conversation.

Called by the webhook worker (``saas.webhooks.jobs``) inside the clinic's tenant scope,
with the stored :class:`~saas.webhooks.models.WebhookEvent` row. Every step is idempotent:
re-running an event finds the friend and the stored messages and does not reply twice.
"""

from __future__ import annotations

import logging

from saas import line
from saas.extensions import db
from saas.friends import consent, hooks, media, replies, services
from saas.friends.models import Direction, Friend, FriendStatus, MediaState, Message
from saas.line.errors import LineError
from saas.queues import DEFAULT, get_queue

log = logging.getLogger(__name__)


def handle(clinic, event) -> None:
    """Apply one stored webhook event; events of other kinds or sources are ignored."""
    source = event.payload.get("source") if isinstance(event.payload.get("source"), dict) else {}
    if event.line_user_id is None or source.get("type", "user") != "user":
        return
    handler = _HANDLERS.get(event.event_type)
    if handler is not None:
        handler(clinic, event)


def _friend_for(clinic, event) -> Friend:
    """The sender of a message or postback. Someone unknown is usually a friend whose follow
    webhook was lost, but may be a user who never added the account: LINE's profile answer
    decides (200 for friends, 404 for others), and until it says "friend" nobody unknown is
    counted or sent broadcasts. Only unknown or nameless senders cost the profile call."""
    friend, created = services.get_or_create_friend(event.line_user_id, status=FriendStatus.BLOCKED)
    if created or not friend.display_name:
        db.session.commit()  # no lock held while LINE is asked for the profile
        profile = _refresh_profile(clinic, friend)
        if profile is not None and friend.followed_at is None and friend.blocked_at is None:
            services.mark_following(friend, event.occurred_at)  # a friend whose follow we never saw
    services.keep_reply_token(friend, event.reply_token, event.reply_token_expires_at)
    return friend


def _refresh_profile(clinic, friend: Friend):
    """The friend's LINE profile applied (and returned); None when LINE did not give it."""
    try:
        profile = line.client.get_profile(clinic, friend.line_user_id)
    except LineError as exc:  # the friend is still worth keeping without a name
        log.warning("profile of %s not fetched: %s", friend.line_user_id, exc)
        return None
    services.apply_profile(friend, profile)
    return profile


def on_follow(clinic, event) -> None:
    friend, _ = services.get_or_create_friend(event.line_user_id)
    services.mark_following(friend, event.occurred_at)
    db.session.commit()
    _refresh_profile(clinic, friend)
    services.keep_reply_token(friend, event.reply_token, event.reply_token_expires_at)
    db.session.commit()
    hooks.notify_followed(clinic, friend, event.payload)
    db.session.commit()
    greeting = hooks.answer_follow(clinic, friend, event.payload)
    _answer(clinic, friend, event, consent.with_question(friend, greeting))


def on_unfollow(clinic, event) -> None:
    friend, _ = services.get_or_create_friend(event.line_user_id)
    services.mark_blocked(friend, event.occurred_at)
    db.session.commit()
    if not friend.is_following:  # an older, out-of-order unfollow changed nothing
        hooks.notify_unfollowed(clinic, friend)
        db.session.commit()


def _object(payload: dict, key: str) -> dict:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _string(value) -> str:
    return value if isinstance(value, str) else ""


def on_message(clinic, event) -> None:
    friend = _friend_for(clinic, event)
    content = _object(event.payload, "message")
    kind = _string(content.get("type"))[:32] or "unknown"
    message = _record_incoming(
        friend,
        event,
        kind=kind,
        text=_string(content.get("text")),
        payload=content,
        line_message_id=_string(content.get("id"))[:64] or None,
    )
    if message is not None and kind in media.MEDIA_KINDS:
        _fetch_later(clinic, media.note_pending(message, content))
    _answer(clinic, friend, event, hooks.answer_message(clinic, friend, event.payload))


def _fetch_later(clinic, row) -> None:
    db.session.commit()
    if row.state == MediaState.PENDING:
        get_queue(DEFAULT).enqueue("saas.friends.jobs.fetch_message_media", row.id, clinic.id)


def on_postback(clinic, event) -> None:
    friend = _friend_for(clinic, event)
    postback = _object(event.payload, "postback")
    _record_incoming(friend, event, kind="postback", text=_string(postback.get("data")), payload=postback)
    _answer(clinic, friend, event, hooks.answer_postback(clinic, friend, event.payload))


def on_unsend(clinic, event) -> None:
    """The patient unsent a message: hide it in the inbox, keep an audited tombstone."""
    message_id = _string(_object(event.payload, "unsend").get("messageId"))
    if message_id:
        services.unsend_message(event.line_user_id, message_id, event.occurred_at)
    db.session.commit()


def _record_incoming(friend: Friend, event, **fields) -> Message | None:
    """The patient's message, stored once (None when this event was already recorded)."""
    if replies.already_recorded(event, Direction.IN):
        return None
    message = services.record_message(
        friend, Direction.IN, webhook_event_id=event.id, created_at=event.occurred_at, **fields
    )
    db.session.commit()
    return message


def _answer(clinic, friend: Friend, event, answer: list[dict] | None) -> None:
    """Send the responders' answer by reply, or by push when the token no longer works.

    Commits first: responders may have changed state (a hand-off pauses the bot), and no
    database lock may be held while LINE is called.
    """
    db.session.commit()
    if answer and event.mode == "active":
        replies.answer(clinic, friend, event, answer)


_HANDLERS = {
    "follow": on_follow,
    "unfollow": on_unfollow,
    "message": on_message,
    "postback": on_postback,
    "unsend": on_unsend,
}
