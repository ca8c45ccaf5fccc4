"""Answering a webhook event: the free reply while LINE takes its token, else a push.

A reply token is valid once and for about a minute. When the event's token has expired, was
used, or LINE refuses it, the answer goes out as a push instead of being lost: counted
against the clinic's quota (``saas.quota.counter``) and marked "push" in the conversation.
The push carries a retry key derived from the event, so a job that runs again after a crash
cannot deliver the answer twice (LINE answers 409 and that counts as sent).
"""

from __future__ import annotations

import logging
import time
import uuid

import sqlalchemy as sa

from saas import line
from saas.common import utcnow
from saas.extensions import db
from saas.friends import services
from saas.friends.models import Direction, Friend, Message
from saas.line.errors import LineError, LineRequestRejected, LineRetryKeyAccepted
from saas.links import services as links
from saas.quota import counter
from saas.receipts import services as receipts
from saas.receipts.models import ReceiptSource

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 3
_RETRY_KEYS = uuid.UUID("6f1d7c52-3b1e-4a8e-9a57-8c1f0e0c2b11")  # namespace of answer retry keys


class Via:
    """How an answer went out (``Message.via``), as the inbox shows it."""

    REPLY = "reply"  # the event's reply token: free
    PUSH = "push"  # counts against the monthly quota


class AnswerNotSent(Exception):
    """Neither the reply nor the push went out; the event is retried later."""


class AnswerRefused(AnswerNotSent):
    """LINE refused the push with a 4xx other than 429 (an invalid message, a user it will not
    deliver to): sending the same answer again cannot succeed, so the event is not retried."""


def already_recorded(event, direction: str) -> bool:
    """Whether the conversation already holds this event's message (``in``) or its answer (``out``).

    An event on its first claim (``attempts == 1``) has recorded nothing: no query is needed.
    """
    if event.attempts == 1:
        return False
    found = sa.select(Message.id).where(Message.webhook_event_id == event.id, Message.direction == direction)
    with db.session.no_autoflush:  # the event's messages are committed before; pending changes can wait
        return db.session.scalar(found.limit(1)) is not None


def answer(clinic, friend: Friend, event, messages: list[dict]) -> str | None:
    """Send ``messages`` as the answer to ``event`` and keep them in the conversation.

    Returns how they went (``reply``/``push``), None when already answered. Call with no
    uncommitted writes: nothing holds a database lock while LINE is called.
    """
    if already_recorded(event, Direction.OUT):
        return None
    messages = links.track_for_friend(friend.clinic_id, friend, messages)
    if event.reply_sent_at is not None:  # an earlier attempt handed the reply to LINE, then died
        _record(friend, event, messages, _reply_again(clinic, event, messages), Via.REPLY)
        return Via.REPLY
    sent = _reply(clinic, event, messages)
    if sent is None:
        return push_answer(clinic, friend, event, messages)
    _record(friend, event, messages, sent, Via.REPLY)
    return Via.REPLY


def _reply_again(clinic, event, messages: list[dict]):
    """The reply of an attempt that died before recording it: LINE may have delivered it.

    While the token lives the reply is simply tried again: LINE takes a token once, so it
    either delivers now (the first never reached LINE) or refuses the used token (the first
    was delivered). Once the token has expired nobody can tell; the answer is taken as
    delivered rather than risk a second one by push (the window before the call is a few
    statements; the call itself is most of the time a reply takes).
    """
    if event.reply_token_usable:
        try:
            return line.client.reply(clinic, event.reply_token, messages)
        except LineError as exc:
            log.info("reply to event %s refused again (%s): the earlier attempt was delivered", event.id, exc)
    else:
        log.warning("reply to event %s was handed to LINE before a crash; taken as delivered", event.id)
    return line.client.Sent(request_id=None)


def push_answer(clinic, friend: Friend, event, messages: list[dict]) -> str:
    """Send the answer by push (the reply did not go) and keep it in the conversation; commits.
    Raises :class:`AnswerNotSent` when no quota is left or LINE refuses the push."""
    if event.reply_sent_at is not None:  # LINE refused the reply: a retry must push, not take it as delivered
        event.reply_sent_at = None
        db.session.commit()
    _record(friend, event, messages, _push(clinic, friend, event, messages), Via.PUSH)
    return Via.PUSH


def _reply(clinic, event, messages: list[dict]):
    if not event.reply_token_usable:
        return None
    event.reply_sent_at = utcnow()  # kept before LINE is called: a retry after a crash knows
    db.session.commit()
    try:
        return line.client.reply(clinic, event.reply_token, messages)
    except LineError as exc:  # expired or used token, or LINE in trouble: the push still answers
        log.info("reply to event %s refused (%s); answering by push", event.id, exc)
        return None


def retry_key_for(event) -> str:
    """The push's retry key: the same for every attempt at answering this event."""
    return str(uuid.uuid5(_RETRY_KEYS, f"{event.clinic_id}:{event.webhook_event_id}"))


def _push(clinic, friend: Friend, event, messages: list[dict]):
    try:
        reservation = counter.reserve(clinic.id, 1, purpose=f"webhook:event:{event.id}")
    except counter.QuotaExceeded as exc:
        db.session.rollback()
        raise AnswerNotSent(f"no quota left for the push answer: {exc}") from exc
    try:
        return _push_with_retries(clinic, friend, messages, retry_key_for(event))
    except LineError as exc:
        counter.release(reservation, reservation.granted)
        if isinstance(exc, LineRequestRejected):
            raise AnswerRefused(f"LINE refused the push answer ({exc.status}): {exc}") from exc
        raise AnswerNotSent(f"push answer failed: {exc}") from exc


def _push_with_retries(clinic, friend: Friend, messages: list[dict], retry_key: str):
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        try:
            return line.client.push(clinic, friend.line_user_id, messages, retry_key)
        except LineRetryKeyAccepted as exc:  # an earlier attempt got through
            return line.client.Sent(request_id=exc.accepted_request_id)
        except LineRequestRejected:
            raise
        except LineError:
            if attempt == PUSH_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _record(friend: Friend, event, messages: list[dict], sent, via: str) -> None:
    """The answer joins the conversation, and the friend's receipts (committed together, once)."""
    ids = list(getattr(sent, "message_ids", None) or []) + [None] * len(messages)
    stored = [
        services.record_message(
            friend,
            Direction.OUT,
            kind=str(message.get("type") or "unknown"),
            text=message.get("text") or message.get("altText") or "",
            payload=message,
            line_message_id=line_id,
            webhook_event_id=event.id,
            via=via,
        )
        for message, line_id in zip(messages, ids, strict=False)
    ]
    db.session.flush()
    source = ReceiptSource.GREETING if event.event_type == "follow" else ReceiptSource.AUTO_REPLY
    receipts.record(friend.id, source, message_id=stored[0].id if stored else None, messages=messages)
    if via == Via.REPLY and friend.reply_token == event.reply_token:
        friend.reply_token, friend.reply_token_expires_at = None, None  # used up
    db.session.commit()
