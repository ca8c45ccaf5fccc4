"""Recording what a friend received: the one helper every outbound path calls.

Call these *before* the commit that marks the send as done (chunk SENT, push recipient SENT,
reminder SENT, the conversation's message stored), never after, and only once LINE accepted
the send (a 2xx, or a 409 for a retry key LINE already accepted): that one transaction is what
keeps receipts exactly-once when a send is retried. Nothing here commits.

- :func:`record_chunk` — every recipient of a delivery chunk, in ONE multi-row INSERT;
- :func:`record` — a single friend's receipt (one push or reply).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from saas.common import utcnow
from saas.extensions import db
from saas.receipts.models import PREVIEW_LENGTH, FriendReceipt, ReceiptSource
from saas.tenancy.scoping import integer_array

_DELIVERY_SOURCES = frozenset(s.value for s in ReceiptSource)


def source_of_delivery(kind: str, source: str | None = None) -> str:
    """A delivery's receipt source: what sent it (``Delivery.source``, e.g. coupon) or its kind."""
    chosen = source or kind
    return chosen if chosen in _DELIVERY_SOURCES else ReceiptSource.PUSH


def record_chunk(
    clinic_id: int,
    delivery_id: int,
    chunk_id: int,
    friend_ids: Iterable[int],
    source: str,
    sent_at: datetime | None = None,
) -> int:
    """One receipt per friend of a chunk LINE accepted, in one multi-row INSERT. Returns the rows written.

    A friend who already has a receipt of this delivery is left alone (the unique index), so even
    a send repeated past its state guard cannot count anyone twice.
    """
    sent_at, friend_ids = sent_at or utcnow(), list(friend_ids)
    if not friend_ids:
        return 0
    shared = {"clinic_id": clinic_id, "source": source, "delivery_id": delivery_id, "chunk_id": chunk_id,
              "sent_at": sent_at, "preview": ""}  # fmt: skip
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_unnest_insert(shared, friend_ids))
    else:
        rows = [{**shared, "friend_id": friend_id} for friend_id in friend_ids]
        statement = sqlite.insert(FriendReceipt).on_conflict_do_nothing()
        db.session.execute(statement, rows, execution_options={"synchronize_session": False})
    return len(friend_ids)


def _unnest_insert(shared: dict, friend_ids: list[int]):
    """Postgres: one INSERT … SELECT over ``unnest(friend_ids)``: one array parameter, no per-row work here
    (an executemany of 500 rows cost about 12 ms of CPU per chunk, this well under one)."""
    columns = list(shared)
    values = [sa.literal(shared[name], type_=FriendReceipt.__table__.c[name].type) for name in columns]
    rows = sa.select(*values, sa.func.unnest(integer_array(friend_ids)))
    return postgresql.insert(FriendReceipt).from_select([*columns, "friend_id"], rows).on_conflict_do_nothing()


def record(
    friend_id: int,
    source: str,
    *,
    messages: list[dict] | None = None,
    message_id: int | None = None,
    ref_id: int | None = None,
    delivery_id: int | None = None,
    chunk_id: int | None = None,
    sent_at: datetime | None = None,
) -> FriendReceipt:
    """One friend's receipt of a single send (current tenant scope); added to the session, not committed.

    Pass ``delivery_id``/``chunk_id`` for a delivery's push, ``message_id`` when the conversation
    keeps the send (replies), else ``messages``: the receipt then keeps a copy and a text preview,
    since nothing else holds what was sent.
    """
    receipt = FriendReceipt(
        friend_id=friend_id,
        source=source,
        delivery_id=delivery_id,
        chunk_id=chunk_id,
        message_id=message_id,
        ref_id=ref_id,
        messages=messages if messages and not message_id else None,
        preview="" if message_id else preview_of(messages or []),
        sent_at=sent_at or utcnow(),
    )
    db.session.add(receipt)
    return receipt


def preview_of(messages: list[dict]) -> str:
    """A one-line summary of LINE message objects: the first text (or alt text), else the types."""
    for message in messages:
        text = message.get("text") or message.get("altText") or ""
        if text:
            return " ".join(str(text).split())[:PREVIEW_LENGTH]
    return " ".join(f"[{m.get('type', '?')}]" for m in messages)[:PREVIEW_LENGTH]
