"""A clinic's message events from friends it knows, handled as one batch: a few statements for
the whole batch instead of a dozen per event.

The webhook worker (``saas.webhooks.jobs``) hands over the plain case — a message that is not
media, from a friend with a profile, on the event's first claim — and handles every other
event one by one (``saas.friends.events``). Each of a friend's events goes one way or the
other, so a friend's events keep their order. What the batch does, and what a crash leaves:

1. one transaction stores the patients' messages (one multi-row INSERT), the friends' newest
   reply tokens, the inbox and day counters (one upsert per friend, per day) and whatever the
   responders decided (a hand-off pauses the bot), and is committed before LINE is called;
2. the answers go out by reply, concurrently, with no database work (the worker stores its next
   batch and records its previous one meanwhile): a crash here leaves the
   events claimed; taken again after ``CLAIM_TIMEOUT`` they are handled one by one and find
   their messages stored and their replies marked as handed to LINE (``reply_sent_at``, set in
   step 1): the reply is tried again while the token lives (LINE refuses a used one), else taken
   as delivered, never sent again by push;
3. one transaction stores the answers, their receipts and the used tokens, and marks the
   events handled. An answer LINE did not take as a reply goes by push, one event at a time
   as ``saas.friends.replies`` does for every answer (quota, retry key).

Should step 1 fail (a responder raising, the database refusing), nothing of it is kept and
every event of the batch is handed back to be handled one by one, which isolates the failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from saas import line
from saas.analytics import marks
from saas.common import utcnow
from saas.extensions import db
from saas.friends import hooks, media, services
from saas.friends.models import Direction, Friend, Message
from saas.inbox import counters
from saas.line.errors import LineError
from saas.links import services as links
from saas.links.rewrite import links_in
from saas.portal.models import count_stored
from saas.receipts.models import FriendReceipt, ReceiptSource
from saas.webhooks.models import WebhookEvent

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One event of the batch and what became of it."""

    event: object  # the WebhookEvent row
    friend: Friend
    answer: list[dict] | None = None
    sent: line.client.Sent | None = None
    failed: str | None = None  # why the reply could not even be tried (not a LINE refusal)


def _content(event) -> dict:
    value = event.payload.get("message")
    return value if isinstance(value, dict) else {}


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def batchable(event, friend: Friend | None) -> bool:
    """Whether this event takes the batch path (else it is handled one by one)."""
    source = event.payload.get("source") if isinstance(event.payload.get("source"), dict) else {}
    return (
        event.event_type == "message"
        and event.attempts == 1  # a retried event may have stored its message: the careful path checks
        and source.get("type", "user") == "user"
        and friend is not None
        and bool(friend.display_name)  # else its profile is fetched first
        and _text(_content(event).get("type")) not in media.MEDIA_KINDS
    )


def store(clinic, items: list[Item]) -> None:
    """Step 1: the patients' messages, tokens, counters and the responders' answers; committed."""
    rows = [_incoming_row(clinic.id, item) for item in items]
    ids = dict((event_id, message_id) for message_id, event_id in _insert_messages(rows))
    for row in rows:
        row["id"] = ids[row["webhook_event_id"]]
    for item, row in zip(items, rows, strict=True):
        item.friend.last_message_at = row["created_at"]
        services.keep_reply_token(item.friend, item.event.reply_token, item.event.reply_token_expires_at)
    counters.fold_stored(db.session, rows)
    count_stored(db.session, rows)
    hooks.prepare_message_batch(clinic, list({item.friend.id: item.friend for item in items}.values()))
    for item in items:
        answer = hooks.answer_message(clinic, item.friend, item.event.payload)
        item.answer = answer if answer and item.event.mode == "active" else None
    _track_links(clinic.id, [item for item in items if item.answer and links_in(item.answer)])
    _note_replies_due(items)
    db.session.commit()  # nothing holds a lock, and everything is kept, before LINE is called


def _note_replies_due(items: list[Item]) -> None:
    """The events whose reply goes to LINE next are marked in the same commit (one UPDATE): a
    worker dying after LINE took a reply, before step 3, leaves a retry that knows it
    (``saas.friends.replies._reply_again``) and answers nobody a second time by push."""
    due = [item.event.id for item in items if item.answer and item.event.reply_token_usable]
    if due:
        db.session.execute(
            sa.update(WebhookEvent)
            .where(WebhookEvent.id.in_(due))
            .values(reply_sent_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def _insert_messages(rows: list[dict]) -> list[tuple[int, int]]:
    """One multi-row INSERT (on both databases: no RETURNING order asked); (id, webhook event id) each."""
    returning = sa.insert(Message).returning(Message.id, Message.webhook_event_id)
    return [tuple(row) for row in db.session.execute(returning, rows)]


def _incoming_row(clinic_id: int, item: Item) -> dict:
    content = _content(item.event)
    return {
        "clinic_id": clinic_id,
        "friend_id": item.friend.id,
        "direction": Direction.IN.value,
        "kind": _text(content.get("type"))[:32] or "unknown",
        "text": _text(content.get("text")),
        "payload": content,
        "line_message_id": _text(content.get("id"))[:64] or None,
        "webhook_event_id": item.event.id,
        "created_at": item.event.occurred_at,
    }


def _track_links(clinic_id: int, items: list[Item]) -> None:
    """Answers with URLs carry the friend's own short links (codes stored before LINE sees them)."""
    if items:
        tracked = links.track_per_friend(clinic_id, None, [(item.friend, item.answer) for item in items])
        for item, messages in zip(items, tracked, strict=True):
            item.answer = messages


def send(clinic, items: list[Item], parallel: int) -> None:
    """Step 2: every answer whose token is still usable goes out by reply, ``parallel`` at a time."""
    start_sending(clinic, items, parallel)()


def start_sending(clinic, items: list[Item], parallel: int) -> Callable[[], None]:
    """Step 2 started: the replies go out on threads of their own; returns the call that waits
    until LINE answered each. The worker stores its next batch meanwhile (``saas.webhooks.jobs``):
    the replies are HTTP calls only and touch no database session."""
    due = [item for item in items if item.answer and item.event.reply_token_usable]
    if not due:
        return lambda: None
    app = current_app._get_current_object()

    def reply(item: Item) -> None:
        with app.app_context():
            try:
                item.sent = line.client.reply(clinic, item.event.reply_token, item.answer)
            except LineError as exc:  # expired or used token, LINE in trouble: a push answers instead
                log.info("reply to event %s refused (%s); answering by push", item.event.id, exc)
            except Exception as exc:  # not known to have reached LINE: the event is retried
                log.exception("reply to event %s failed", item.event.id)
                item.failed = f"{type(exc).__name__}: {exc}"[:2000]

    pool = ThreadPoolExecutor(max_workers=min(parallel, len(due)))
    futures = [pool.submit(reply, item) for item in due]

    def wait() -> None:
        for future in futures:
            future.result()
        pool.shutdown()

    return wait


def record(clinic, items: list[Item]) -> None:
    """Step 3: the replies join the conversations and the friends' receipts (not committed)."""
    replied = [item for item in items if item.sent is not None]
    if not replied:
        return
    now = utcnow()
    rows = [
        _outgoing_row(clinic.id, item, message, line_id, now)
        for item in replied
        for message, line_id in zip(item.answer, [*item.sent.message_ids, *[None] * len(item.answer)], strict=False)
    ]
    first_ids, last_ids = {}, {}
    for message_id, event_id in sorted(_insert_messages(rows)):  # ids ascend in the order of the rows
        first_ids.setdefault(event_id, message_id)
        last_ids[event_id] = message_id
    friend_of = {item.event.id: item.friend.id for item in replied}
    stored = [{"id": message_id, "clinic_id": clinic.id, "friend_id": friend_of[event_id], "created_at": now,
               "direction": Direction.OUT.value} for event_id, message_id in last_ids.items()]  # fmt: skip
    counters.fold_stored(db.session, stored)
    count_stored(db.session, rows)
    marks.note_sent(db.session, clinic.id, [now])
    receipts = [
        {"clinic_id": clinic.id, "friend_id": item.friend.id, "source": ReceiptSource.AUTO_REPLY.value,
         "message_id": first_ids[item.event.id], "preview": "", "sent_at": now}
        for item in replied
    ]  # fmt: skip
    db.session.execute(sa.insert(FriendReceipt), receipts)
    _forget_used_tokens(replied)


def _forget_used_tokens(replied: list[Item]) -> None:
    """A friend's kept reply token is cleared if it is the one just used. Compared in the database,
    not on the loaded friend: the next batch may have stored a newer token since (one UPDATE)."""
    used = [(item.friend.id, item.event.reply_token) for item in replied if item.event.reply_token]
    if used:
        db.session.execute(
            sa.update(Friend)
            .where(sa.tuple_(Friend.id, Friend.reply_token).in_(used))
            .values(reply_token=None, reply_token_expires_at=None)
            .execution_options(synchronize_session=False)
        )


def _outgoing_row(clinic_id: int, item: Item, message: dict, line_id: str | None, now) -> dict:
    return {
        "clinic_id": clinic_id,
        "friend_id": item.friend.id,
        "direction": Direction.OUT.value,
        "kind": str(message.get("type") or "unknown"),
        "text": message.get("text") or message.get("altText") or "",
        "payload": message,
        "line_message_id": line_id,
        "webhook_event_id": item.event.id,
        "via": "reply",
        "created_at": now,
    }


def needs_push(item: Item) -> bool:
    """An answer that did not go as a reply (token expired or refused): it goes by push."""
    return bool(item.answer) and item.sent is None and item.failed is None
