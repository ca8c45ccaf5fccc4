"""Sending one chunk: rate limit, the call to LINE with the chunk's retry key, and what each answer means.

- 2xx, or 409 (this retry key was already accepted: a previous attempt got through) → sent.
- 429 rate limit, 5xx, no answer → retried with exponential back-off and jitter, same key,
  for as long as LINE remembers the key: LINE documents that a retried request with an
  accepted key answers 409, and keeps the key for 24 hours (line-platform.md §1.6), so a
  chunk is retried for ``DELIVERY_RETRY_WINDOW_SECONDS`` (23 h, an hour's margin) from its
  first attempt, then marked failed (「失敗分を再送」 can send it again later).
- 429 "monthly limit" → the whole delivery stops; chunks not yet sent are skipped.
- any other 4xx → the chunk fails with LINE's reason.
Short waits happen in the job; longer ones re-enqueue it with ``enqueue_in``. The chunk row's
``updated_at`` is its heartbeat: a chunk left SENDING without one is taken back by the sweeper.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

import sqlalchemy as sa
from flask import current_app

from saas.common import utcnow
from saas.delivery import ratelimit
from saas.delivery.models import ChunkStatus, Delivery, DeliveryChunk, DeliveryRecipient, DeliveryStatus
from saas.delivery.planner import RETRY_WINDOW_SECONDS
from saas.delivery.services import finish_if_complete, skip_pending_chunks
from saas.extensions import db
from saas.friends.models import Friend
from saas.insights import units
from saas.line import client as line
from saas.line.errors import LineError, LineMonthlyLimitReached, LineRequestRejected, LineRetryKeyAccepted
from saas.privacy.services import ERASED
from saas.queues import get_queue
from saas.receipts import services as receipts
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import integer_array

log = logging.getLogger(__name__)
PUSH_COMMIT_EVERY = 50


class _Later(Exception):
    """Put the chunk back and run it again after ``delay`` seconds."""

    def __init__(self, delay: float, reason: str):
        super().__init__(reason)
        self.delay, self.reason = delay, reason


def _setting(name: str, default: float) -> float:
    return float(current_app.config.get(name, default))


def backoff(attempt: int) -> float:
    """Exponential back-off with jitter (LINE's 429s carry no Retry-After)."""
    base, cap = _setting("DELIVERY_RETRY_BASE_SECONDS", 1.0), _setting("DELIVERY_RETRY_CAP_SECONDS", 300.0)
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def run_chunk(chunk_id: int) -> str:
    """Send one chunk (current tenant scope); safe to run twice. Returns the chunk's status."""
    if not _claim(chunk_id):
        return _not_claimed(chunk_id)
    with _kept_after_commits():
        chunk, clinic, delivery = _load(chunk_id)
        try:
            _send_with_retries(clinic, chunk, receipts.source_of_delivery(delivery.kind, delivery.source))
        except _Later as later:
            _put_back(chunk, later)
            return ChunkStatus.PENDING
        except LineMonthlyLimitReached as limit:
            _stop_delivery(chunk, limit)
        except LineRequestRejected as rejected:
            _fail(chunk, _reason(rejected))
        finish_if_complete(chunk.delivery_id)
        return chunk.status


@contextmanager
def _kept_after_commits():
    """The job's commits leave its objects loaded: the claimed chunk is this job's alone and its
    clinic is read once, so re-reading both after every commit (a SELECT each) buys nothing."""
    session = db.session()
    expiring, session.expire_on_commit = session.expire_on_commit, False
    try:
        yield
    finally:
        session.expire_on_commit = expiring


def _load(chunk_id: int):
    """The claimed chunk, its clinic and its delivery, in one SELECT (the delivery stays in the
    session for the aggregation unit)."""
    return db.session.execute(
        sa.select(DeliveryChunk, Clinic, Delivery)
        .join(Clinic, Clinic.id == DeliveryChunk.clinic_id)
        .join(Delivery, Delivery.id == DeliveryChunk.delivery_id)
        .where(DeliveryChunk.id == chunk_id)
    ).one()


def _claim(chunk_id: int) -> bool:
    """PENDING → SENDING in one statement, only while its delivery is still being sent."""
    now = utcnow()
    changed = db.session.execute(
        sa.update(DeliveryChunk)
        .where(
            DeliveryChunk.id == chunk_id,
            DeliveryChunk.status == ChunkStatus.PENDING,
            Delivery.id == DeliveryChunk.delivery_id,  # UPDATE … FROM delivery: its status says the send is live
            Delivery.status.in_((DeliveryStatus.SENDING, DeliveryStatus.PLANNING)),
        )
        .values(
            status=ChunkStatus.SENDING,
            updated_at=now,
            first_attempt_at=sa.func.coalesce(DeliveryChunk.first_attempt_at, now),
        ),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return changed.rowcount == 1


def _not_claimed(chunk_id: int) -> str:
    """Why a chunk was not taken: done already, taken by another job, or its delivery ended."""
    chunk = db.session.get(DeliveryChunk, chunk_id)
    if chunk is None or chunk.status != ChunkStatus.PENDING:
        return chunk.status if chunk else "missing"
    delivery = db.session.get(Delivery, chunk.delivery_id)
    if delivery.status in (DeliveryStatus.SENDING, DeliveryStatus.PLANNING):
        return "claimed elsewhere"
    skip_pending_chunks(delivery.id, "monthly_limit" if delivery.status == DeliveryStatus.STOPPED else "cancelled")
    finish_if_complete(delivery.id)
    return ChunkStatus.SKIPPED


def _send_with_retries(clinic: Clinic, chunk: DeliveryChunk, source: str) -> None:
    inline_max = _setting("DELIVERY_INLINE_WAIT_SECONDS", 1.0)
    while True:
        try:
            _send(clinic, chunk, inline_max, source)
            return
        except LineError as error:
            if not error.retryable:
                raise
            chunk.attempts += 1
            chunk.last_error = _reason(error)
            chunk.unanswered = chunk.unanswered or not error.status
            db.session.commit()
            _give_up_when_out_of_time(chunk, error)
            delay = backoff(chunk.attempts)
            if delay > inline_max:
                raise _Later(delay, chunk.last_error) from error
            time.sleep(delay)


def _give_up_when_out_of_time(chunk: DeliveryChunk, error: LineError) -> None:
    """Past the retry-key window (or ``DELIVERY_MAX_ATTEMPTS``, when set) the chunk fails."""
    window = _setting("DELIVERY_RETRY_WINDOW_SECONDS", RETRY_WINDOW_SECONDS)
    max_attempts = current_app.config.get("DELIVERY_MAX_ATTEMPTS")
    started = chunk.first_attempt_at or utcnow()
    if (utcnow() - started).total_seconds() >= window:
        hours = window / 3600
        raise LineRequestRejected(
            f"{hours:g}時間再試行しても送信できませんでした（{chunk.attempts}回、{chunk.last_error}）"
        ) from error
    if max_attempts and chunk.attempts >= int(max_attempts):
        raise LineRequestRejected(f"{max_attempts}回試しても送信できませんでした（{chunk.last_error}）") from error


def _send(clinic: Clinic, chunk: DeliveryChunk, inline_max: float, source: str) -> None:
    """Send the chunk; once LINE accepted it, mark it SENT and write its receipts in one transaction
    (the claim PENDING → SENDING lets one job at a time get here, so receipts are written once)."""
    if chunk.mode == "push":
        _send_pushes(clinic, chunk, inline_max, source)
        return
    _wait_for_rate(clinic, "multicast", inline_max)
    recipients = _recipients(chunk.friend_ids)
    user_ids = [user_id for _, user_id in recipients]
    request_id = _multicast(clinic, chunk, user_ids) if user_ids else None
    chunk.status, chunk.sent, chunk.request_id, chunk.sent_at = ChunkStatus.SENT, len(user_ids), request_id, utcnow()
    friend_ids = (friend_id for friend_id, _ in recipients)
    receipts.record_chunk(chunk.clinic_id, chunk.delivery_id, chunk.id, friend_ids, source, chunk.sent_at)
    db.session.commit()


def _recipients(friend_ids: list[int]) -> list[tuple[int, str]]:
    """The recipients' friend and LINE user ids; a friend erased since planning is left out (counted as such)."""
    found = sa.select(Friend.id, Friend.line_user_id).where(_among(Friend.id, friend_ids), Friend.status != ERASED)
    return db.session.execute(found).tuples().all()


def _among(column, ids: list[int]):
    """``column IN ids``; on Postgres one array parameter (``= ANY``) instead of 500 bound values."""
    if db.session.get_bind().dialect.name == "postgresql":
        return column == sa.any_(integer_array(ids))
    return column.in_(ids)


def _multicast(clinic: Clinic, chunk: DeliveryChunk, user_ids: list[str]) -> str | None:
    def send(unit: str | None):
        return line.multicast(clinic, user_ids, chunk.messages, retry_key=chunk.retry_key, unit=unit)

    try:
        return units.send_with_unit(clinic, chunk.delivery_id, send).request_id
    except LineRetryKeyAccepted as accepted:  # an earlier attempt was accepted: already delivered
        return accepted.accepted_request_id


def _send_pushes(clinic: Clinic, chunk: DeliveryChunk, inline_max: float, source: str) -> None:
    pending = db.session.scalars(
        sa.select(DeliveryRecipient)
        .where(DeliveryRecipient.chunk_id == chunk.id, DeliveryRecipient.status == ChunkStatus.PENDING)
        .order_by(DeliveryRecipient.id)
    ).all()
    for index, recipient in enumerate(pending, start=1):
        _wait_for_rate(clinic, "push", inline_max)
        try:
            units.send_with_unit(clinic, chunk.delivery_id, partial(_push, clinic, recipient))
            recipient.status = ChunkStatus.SENT
        except LineRetryKeyAccepted:
            recipient.status = ChunkStatus.SENT
        except LineRequestRejected as rejected:
            recipient.status, recipient.error = ChunkStatus.FAILED, _reason(rejected)
        if recipient.status == ChunkStatus.SENT:  # committed with its SENT state, whichever commit that is
            receipts.record(recipient.friend_id, source, delivery_id=chunk.delivery_id, chunk_id=chunk.id)
        if index % PUSH_COMMIT_EVERY == 0:
            chunk.updated_at = utcnow()  # heartbeat: this chunk's job is alive
            db.session.commit()
    db.session.commit()
    chunk.sent, chunk.failed = _recipient_counts(chunk.id)
    chunk.status = ChunkStatus.SENT if chunk.sent or not chunk.failed else ChunkStatus.FAILED
    chunk.sent_at = utcnow()
    db.session.commit()


def _push(clinic: Clinic, recipient: DeliveryRecipient, unit: str | None):
    return line.push(clinic, recipient.line_user_id, recipient.messages, retry_key=recipient.retry_key, unit=unit)


def _wait_for_rate(clinic: Clinic, endpoint: str, inline_max: float) -> None:
    wait = ratelimit.take(clinic.line_channel_id or str(clinic.id), endpoint, max_wait=inline_max)
    if wait:
        raise _Later(wait, "rate limit")


def _mark_recipients(chunk_id: int, status: str, error: str = "") -> None:
    """A push chunk's recipients not yet settled (multicast chunks have no recipient rows)."""
    db.session.execute(
        sa.update(DeliveryRecipient)
        .where(DeliveryRecipient.chunk_id == chunk_id, DeliveryRecipient.status == ChunkStatus.PENDING)
        .values(status=status, error=error),
        execution_options={"synchronize_session": False},
    )


def _reason(error: LineError) -> str:
    details = "; ".join(
        f"{d.get('property', '')}: {d.get('message', '')}".strip(": ") for d in error.details if isinstance(d, dict)
    )
    status = f"{error.status} " if error.status else ""
    return f"{status}{error.message}" + (f"（{details}）" if details else "")


def _put_back(chunk: DeliveryChunk, later: _Later) -> None:
    from saas.delivery.jobs import send_chunk

    chunk.status = ChunkStatus.PENDING
    chunk.attempts += later.reason == "rate limit"  # a new job id for the new attempt (see DeliveryChunk.job_id)
    db.session.commit()
    queue = get_queue("urgent" if _is_urgent(chunk) else "bulk")
    queue.enqueue_in(
        timedelta(seconds=later.delay), send_chunk, chunk.id, chunk.clinic_id, job_id=chunk.job_id, result_ttl=600
    )
    log.info("chunk %s retried in %.1fs: %s", chunk.id, later.delay, later.reason)


def _is_urgent(chunk: DeliveryChunk) -> bool:
    return db.session.scalar(sa.select(Delivery.kind).where(Delivery.id == chunk.delivery_id)) == "urgent"


def _fail(chunk: DeliveryChunk, reason: str) -> None:
    """The chunk failed: a multicast as a whole (its ``friend_ids`` say who), a push per recipient."""
    if chunk.mode == "push":
        _mark_recipients(chunk.id, ChunkStatus.FAILED, reason)
        db.session.flush()
        chunk.sent, chunk.failed = _recipient_counts(chunk.id)
    else:
        chunk.sent, chunk.failed = 0, chunk.size
    chunk.status, chunk.last_error = ChunkStatus.FAILED, reason
    db.session.commit()


def _recipient_counts(chunk_id: int) -> tuple[int, int]:
    """Sent and failed recipients of a push chunk (none for a multicast chunk)."""
    counts = dict(
        db.session.execute(
            sa.select(DeliveryRecipient.status, sa.func.count(DeliveryRecipient.id))
            .where(DeliveryRecipient.chunk_id == chunk_id)
            .group_by(DeliveryRecipient.status)
        ).all()
    )
    return counts.get(ChunkStatus.SENT, 0), counts.get(ChunkStatus.FAILED, 0)


def _stop_delivery(chunk: DeliveryChunk, limit: LineMonthlyLimitReached) -> None:
    """LINE says the month's messages are used up: stop the send instead of retrying."""
    db.session.commit()  # keep pushes that went through
    chunk.sent, chunk.failed = _recipient_counts(chunk.id)
    chunk.status, chunk.skip_reason, chunk.last_error = ChunkStatus.SKIPPED, "monthly_limit", _reason(limit)
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id == chunk.delivery_id, Delivery.status == DeliveryStatus.SENDING)
        .values(
            status=DeliveryStatus.STOPPED,
            stop_reason="LINEの月間メッセージ上限に達したため、残りの配信を停止しました",
        ),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    skip_pending_chunks(chunk.delivery_id, "monthly_limit")
