"""Blocks attributed to deliveries: the job run for each unfollow (never a page request).

A block (unfollow) at time B is attributed to the last delivery that reached the friend at a
time R with B - 72 h <= R <= B ("reached": LINE accepted the request carrying it, i.e. the
friend's receipt of it in ``message_receipt``; replies, greetings and reminders are not deliveries). It counts in
that delivery's ``blocks_72h``, and in ``blocks_24h`` too when B - R <= 24 h. Ties (two
deliveries reaching the friend at the same moment) go to the later-created one (higher id). Each
block is attributed at most once (``BlockAttribution`` is unique per friend and block time), so
the counters are safe against a job run twice; a friend who blocks again later is a new block.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from saas.delivery.models import Delivery
from saas.extensions import db
from saas.insights import rollup
from saas.insights.models import BlockAttribution, DeliveryInsight
from saas.receipts.models import FriendReceipt

WINDOW = timedelta(hours=72)
SHORT_WINDOW = timedelta(hours=24)


def last_received(friend_id: int, before: datetime) -> tuple[int, datetime] | None:
    """(delivery id, reached at) of the last delivery that reached the friend within 72 h before:
    one read of the friend's receipts (saas.receipts, written when LINE accepted the send)."""
    row = db.session.execute(
        sa.select(FriendReceipt.delivery_id, FriendReceipt.sent_at)
        .where(
            FriendReceipt.friend_id == friend_id,
            FriendReceipt.delivery_id.is_not(None),
            FriendReceipt.sent_at >= before - WINDOW,
            FriendReceipt.sent_at <= before,
        )
        .order_by(FriendReceipt.sent_at.desc(), FriendReceipt.delivery_id.desc())
        .limit(1)
    ).first()
    return (row.delivery_id, row.sent_at) if row else None


def attribute(friend_id: int, blocked_at: datetime) -> int | None:
    """Attribute one block (current tenant scope); the delivery id, or None. Commits."""
    found = last_received(friend_id, blocked_at)
    if found is None:
        return None
    delivery_id, received_at = found
    within_24h = blocked_at - received_at <= SHORT_WINDOW
    delivery = db.session.get(Delivery, delivery_id)
    row = rollup.row_for(delivery)
    db.session.commit()
    try:
        db.session.add(
            BlockAttribution(
                clinic_id=delivery.clinic_id,
                friend_id=friend_id,
                blocked_at=blocked_at,
                delivery_id=delivery_id,
                received_at=received_at,
                within_24h=within_24h,
            )
        )
        db.session.flush()
    except IntegrityError:  # attributed already (the job ran twice)
        db.session.rollback()
        return delivery_id
    db.session.execute(
        sa.update(DeliveryInsight)
        .where(DeliveryInsight.id == row.id)
        .values(
            blocks_72h=DeliveryInsight.blocks_72h + 1,
            blocks_24h=DeliveryInsight.blocks_24h + (1 if within_24h else 0),
        ),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return delivery_id
