"""What a friend received, as staff read it: receipts with the messages exactly as sent.

The conversation (``saas.inbox``) interleaves these with the chat; the friend page lists them.
Every read is an index range on ``(clinic_id, friend_id, sent_at, id)`` with a limit, then
primary-key lookups of the chunks, push recipients and deliveries behind the page's rows:
no page reads more than its own rows, whatever the clinic's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import load_only

from saas.delivery.describe import with_clinic_values
from saas.delivery.models import Delivery, DeliveryChunk, DeliveryRecipient
from saas.extensions import db
from saas.friends.models import Message
from saas.links.models import LinkClick, TrackedLink
from saas.receipts.models import FriendReceipt, ReceiptSource

PAGE = 100

SOURCE_LABELS = {
    ReceiptSource.BROADCAST: _l("一斉配信"),
    ReceiptSource.SEGMENT: _l("セグメント配信"),
    ReceiptSource.URGENT: _l("緊急のお知らせ"),
    ReceiptSource.STEP: _l("ステップ"),
    ReceiptSource.PUSH: _l("個別配信"),
    ReceiptSource.COUPON: _l("クーポン"),
    ReceiptSource.REMINDER: _l("リマインド"),
    ReceiptSource.BOOKING_NOTICE: _l("予約のお知らせ"),
    ReceiptSource.GREETING: _l("挨拶メッセージ"),
    ReceiptSource.AUTO_REPLY: _l("自動応答"),
    ReceiptSource.STAFF: _l("スタッフ返信"),
}


@dataclass
class Received:
    """One send as the friend received it."""

    receipt: FriendReceipt
    messages: list[dict] = field(default_factory=list)
    delivery_id: int | None = None  # links to the delivery's page
    delivery_title: str = ""

    @property
    def at(self) -> datetime:
        return self.receipt.sent_at

    @property
    def source(self) -> str:
        return self.receipt.source

    @property
    def label(self) -> str:
        return str(SOURCE_LABELS.get(self.receipt.source, self.receipt.source))


def outside_conversation(friend_id: int, since: datetime | None = None, limit: int = PAGE) -> list[Received]:
    """The friend's newest sends the conversation does not hold (deliveries, reminders, booking
    notices), sent at or after ``since``, oldest first."""
    query = sa.select(FriendReceipt).where(FriendReceipt.friend_id == friend_id, FriendReceipt.message_id.is_(None))
    if since is not None:
        query = query.where(FriendReceipt.sent_at >= since)
    return _resolved(_newest(query, limit), friend_id)


def received(friend_id: int, limit: int = PAGE, before: tuple[datetime, int] | None = None) -> list[Received]:
    """Everything the friend received, newest first, keyset-paged by ``(sent_at, id)``."""
    query = sa.select(FriendReceipt).where(FriendReceipt.friend_id == friend_id)
    if before is not None:
        query = query.where(sa.tuple_(FriendReceipt.sent_at, FriendReceipt.id) < before)
    return list(reversed(_resolved(_newest(query, limit), friend_id)))


def newer_than(friend_id: int, receipt_id: int, limit: int = 50) -> list[Received]:
    """Sends outside the conversation recorded after receipt ``receipt_id`` (the live poll)."""
    query = sa.select(FriendReceipt).where(
        FriendReceipt.friend_id == friend_id, FriendReceipt.message_id.is_(None), FriendReceipt.id > receipt_id
    )
    newest = db.session.scalars(query.order_by(FriendReceipt.id).limit(limit)).all()
    return _resolved(list(newest), friend_id)


def _newest(query, limit: int) -> list[FriendReceipt]:
    order = (FriendReceipt.sent_at.desc(), FriendReceipt.id.desc())
    return list(reversed(db.session.scalars(query.order_by(*order).limit(limit)).all()))


def _resolved(rows: list[FriendReceipt], friend_id: int) -> list[Received]:
    """Each receipt with what was sent: its own copy, its chunk's messages, or the friend's push."""
    chunks = _by_id(DeliveryChunk, {r.chunk_id for r in rows if r.chunk_id}, "mode", "messages")
    deliveries = _by_id(Delivery, {r.delivery_id for r in rows if r.delivery_id}, "title", "messages", "sent_clinic")
    pushed = _pushed_to(friend_id, {r.delivery_id for r in rows if _is_push(chunks.get(r.chunk_id))})
    in_chat = _by_id(Message, {r.message_id for r in rows if r.message_id}, "kind", "text", "payload")
    items = []
    for row in rows:
        chunk, delivery = chunks.get(row.chunk_id), deliveries.get(row.delivery_id)
        messages = row.messages or (pushed.get(row.delivery_id) if _is_push(chunk) else chunk and chunk.messages)
        if row.message_id in in_chat:
            messages = [_as_sent(in_chat[row.message_id])]
        if not messages and delivery is not None:
            messages = delivery.messages  # its chunk is gone: the composed messages, variables unrendered
        title = with_clinic_values(delivery.title, delivery.sent_clinic or {}) if delivery is not None else ""
        items.append(Received(row, list(messages or []), row.delivery_id if delivery else None, title))
    return items


def _as_sent(message: Message) -> dict:
    """A conversation message as the LINE object it went out as (its text when blanked by retention)."""
    payload = message.payload if isinstance(message.payload, dict) and message.payload.get("type") else None
    return payload or {"type": "text", "text": message.text}


def _is_push(chunk: DeliveryChunk | None) -> bool:
    return chunk is not None and chunk.mode == "push"


def _by_id(model, ids: set[int], *columns: str) -> dict:
    """Rows by primary key, only the columns shown (a chunk's 500 recipient ids stay in the database)."""
    if not ids:
        return {}
    query = sa.select(model).where(model.id.in_(ids)).options(load_only(*(getattr(model, c) for c in columns)))
    return {row.id: row for row in db.session.scalars(query)}


def _pushed_to(friend_id: int, delivery_ids: set[int]) -> dict[int, list]:
    """The friend's own rendering of personalised deliveries (by the unique (delivery, friend) index)."""
    if not delivery_ids:
        return {}
    found = sa.select(DeliveryRecipient.delivery_id, DeliveryRecipient.messages).where(
        DeliveryRecipient.delivery_id.in_(delivery_ids), DeliveryRecipient.friend_id == friend_id
    )
    return {delivery_id: messages for delivery_id, messages in db.session.execute(found)}


@dataclass(frozen=True)
class Entry:
    """One line of the 1:1 timeline: a chat message, or a send the chat does not hold."""

    at: datetime
    message: object = None  # saas.friends.models.Message
    sent: Received | None = None


def interleave(friend_id: int, messages: list, page_was_full: bool, sends: list[Received] | None = None) -> list[Entry]:
    """The conversation's messages with the sends received in the same stretch of time (or ``sends``), by time.

    When ``page_was_full`` older messages exist: sends older than the oldest shown wait for them.
    """
    if sends is None:
        since = messages[0].created_at if messages and page_was_full else None
        sends = outside_conversation(friend_id, since)
    entries = [Entry(m.created_at, message=m) for m in messages]
    entries += [Entry(s.at, sent=s) for s in sends]
    return sorted(entries, key=lambda e: e.at)


def newest_receipt_id(friend_id: int) -> int:
    """Where the live poll starts: the friend's newest receipt (0 when none)."""
    query = sa.select(FriendReceipt.id).where(FriendReceipt.friend_id == friend_id)
    newest = query.order_by(FriendReceipt.sent_at.desc(), FriendReceipt.id.desc()).limit(1)
    return db.session.scalar(newest) or 0


@dataclass(frozen=True)
class Clicked:
    """One tap of the friend on a link we sent them: which URL, in which delivery (None: a chat or
    auto-reply message), when."""

    at: datetime
    url: str
    delivery_id: int | None
    delivery_title: str
    label: str


def clicked(friend_id: int, limit: int = PAGE) -> list[Clicked]:
    """The friend's newest taps, newest first (index ``ix_link_click_clinic_friend``), with each link's
    URL and its delivery's title and kind."""
    rows = db.session.execute(
        sa.select(LinkClick.clicked_at, TrackedLink.url, LinkClick.delivery_id)
        .join(TrackedLink, TrackedLink.id == LinkClick.link_id)
        .where(LinkClick.friend_id == friend_id)
        .order_by(LinkClick.clicked_at.desc(), LinkClick.id.desc())
        .limit(limit)
    ).all()
    deliveries = _by_id(Delivery, {d for _at, _url, d in rows if d}, "title", "kind", "source")
    return [_clicked(at, url, deliveries.get(delivery_id)) for at, url, delivery_id in rows]


def _clicked(at: datetime, url: str, delivery: Delivery | None) -> Clicked:
    from saas.receipts.services import source_of_delivery

    if delivery is None:
        return Clicked(at, url, None, "", str(_l("個別のメッセージ")))
    source = source_of_delivery(delivery.kind, delivery.source)
    return Clicked(at, url, delivery.id, delivery.title or "", str(SOURCE_LABELS.get(source, source)))
