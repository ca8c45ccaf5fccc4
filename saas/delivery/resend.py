"""「失敗分を再送」: a new delivery to exactly the recipients of a delivery who failed.

Nobody gets it twice: only failed recipients are copied, a delivery is resent at most once
(``Delivery.resend_of_id`` is unique), and each copied chunk keeps its retry key while LINE
still remembers it (within the retry window of its first attempt), so an earlier attempt that
LINE accepted after all answers 409 instead of sending again. Past the window a new key is
used, except for chunks where an attempt went unanswered (LINE may have accepted it, and a
new key could send it twice): those are left out and the page says how many.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from saas.common import utcnow
from saas.delivery import services
from saas.delivery.models import ChunkStatus, Delivery, DeliveryChunk, DeliveryRecipient
from saas.delivery.planner import (
    RETRY_WINDOW_SECONDS,
    insert_chunks,
    multicast_chunk,
    new_chunk,
    recipient_row,
    setting,
)
from saas.extensions import db


class NotResendable(Exception):
    """The delivery has no failures to resend, or was resent already."""


def _window_seconds() -> float:
    return setting("DELIVERY_RETRY_WINDOW_SECONDS", RETRY_WINDOW_SECONDS)


def _resendable_chunks(delivery_id: int) -> list[DeliveryChunk]:
    """Chunks with failed recipients that can be sent again without risking a duplicate."""
    chunks = db.session.scalars(
        sa.select(DeliveryChunk)
        .where(DeliveryChunk.delivery_id == delivery_id, DeliveryChunk.failed > 0)
        .order_by(DeliveryChunk.seq)
    ).all()
    return [chunk for chunk in chunks if _key_remembered(chunk) or not chunk.unanswered]


def _key_remembered(chunk: DeliveryChunk) -> bool:
    started = chunk.first_attempt_at or utcnow()
    return (utcnow() - started).total_seconds() < _window_seconds()


def failed_count(delivery_id: int) -> int:
    """How many recipients a resend of ``delivery_id`` would reach."""
    return sum(chunk.failed for chunk in _resendable_chunks(delivery_id))


def withheld_count(delivery_id: int) -> int:
    """Failed recipients left out of a resend because LINE may have accepted them after all."""
    total = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(DeliveryChunk.failed), 0)).where(
            DeliveryChunk.delivery_id == delivery_id
        )
    )
    return int(total) - failed_count(delivery_id)


def resend_failures(original: Delivery, actor=None) -> Delivery:
    """Create and submit the resend of ``original``'s failed recipients. Commits.

    Raises :class:`NotResendable` when there is nothing to resend or it was resent already,
    and ``services.QueueUnavailable`` when the queue is down (then nothing is created).
    """
    if not original.is_resendable or not failed_count(original.id):
        raise NotResendable
    resend = services.create_delivery(
        messages=original.messages,
        kind=original.kind,
        title=f"再送: {original.title}"[:200],
        segment=original.segment,
        friend_id=original.friend_id,
        actor=actor,
        source=original.source,
    )
    resend.resend_of_id = original.id
    try:
        db.session.flush()
    except IntegrityError as already:
        db.session.rollback()
        raise NotResendable from already
    services.submit(resend)
    return resend


def plan_copy(resend: Delivery, next_seq: int) -> tuple[list[int], int]:
    """The planner's batch for a resend: every resendable failed recipient, chunk by chunk, at once."""
    if next_seq:  # copied in one batch already
        return [], 0
    planned: list[tuple[DeliveryChunk, list[dict]]] = []
    for old in _resendable_chunks(resend.resend_of_id):
        copy = _copy_multicast if old.mode == "multicast" else _copy_pushes
        planned += copy(resend, old, next_seq + len(planned))
    insert_chunks(resend, planned)
    return [chunk.id for chunk, _ in planned], sum(chunk.size for chunk, _ in planned)


def _copy_multicast(resend: Delivery, old: DeliveryChunk, seq: int) -> list[tuple[DeliveryChunk, list[dict]]]:
    """A failed multicast failed as a whole: the same recipients again, under its key while LINE keeps it."""
    keep = _key_remembered(old)
    chunk = multicast_chunk(
        resend,
        seq,
        old.messages,
        old.friend_ids,
        retry_key=old.retry_key if keep else None,
        first_attempt_at=old.first_attempt_at if keep else None,
    )
    return [(chunk, [])]


def _copy_pushes(resend: Delivery, old: DeliveryChunk, seq: int) -> list[tuple[DeliveryChunk, list[dict]]]:
    """The failed recipients of a push chunk, each under its own key while LINE keeps it."""
    failed = db.session.execute(
        sa.select(
            DeliveryRecipient.friend_id,
            DeliveryRecipient.line_user_id,
            DeliveryRecipient.messages,
            DeliveryRecipient.retry_key,
        )
        .where(DeliveryRecipient.chunk_id == old.id, DeliveryRecipient.status == ChunkStatus.FAILED)
        .order_by(DeliveryRecipient.id)
    ).all()
    if not failed:
        return []
    keep = _key_remembered(old)
    chunk = new_chunk(resend, seq, "push", [], len(failed))
    rows = [
        recipient_row(_Friend(f.friend_id, f.line_user_id), f.messages, f.retry_key if keep else None) for f in failed
    ]
    return [(chunk, rows)]


class _Friend:
    def __init__(self, friend_id: int, line_user_id: str) -> None:
        self.id, self.line_user_id = friend_id, line_user_id


def failure_reasons(delivery_id: int) -> list[tuple[str, int]]:
    """LINE's answers for a delivery's failures with how many friends each, most first.

    A multicast chunk fails as a whole with one ``last_error``; a push chunk records the reason on
    each failed recipient. Only chunks with failures are joined, so the recipients read are those of
    a few chunks (the ``chunk_id`` index), not a 100,000-friend delivery's every row.
    """
    failed_chunks = sa.and_(DeliveryChunk.delivery_id == delivery_id, DeliveryChunk.failed > 0)
    multicast = sa.select(DeliveryChunk.last_error.label("reason"), DeliveryChunk.failed.label("n")).where(
        failed_chunks, DeliveryChunk.mode != "push"
    )
    push = (
        sa.select(
            sa.func.coalesce(sa.func.nullif(DeliveryRecipient.error, ""), DeliveryChunk.last_error).label("reason"),
            sa.literal(1).label("n"),
        )
        .select_from(DeliveryRecipient)
        .join(DeliveryChunk, DeliveryChunk.id == DeliveryRecipient.chunk_id)
        .where(failed_chunks, DeliveryChunk.mode == "push", DeliveryRecipient.status == ChunkStatus.FAILED)
    )
    outcomes = sa.union_all(multicast, push).subquery()
    total = sa.func.sum(outcomes.c.n)
    query = sa.select(outcomes.c.reason, total).group_by(outcomes.c.reason).order_by(total.desc())
    return [(reason, int(count)) for reason, count in db.session.execute(query)]
