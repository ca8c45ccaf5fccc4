"""Creating, starting, cancelling and finishing deliveries.

start: recipients snapshot (each friend once) → quota reserved for the whole send → chunks of
at most 500, each with its retry key → committed → one RQ job per chunk. Nothing is enqueued
before the reservation succeeded, so a refused send sends nothing.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from saas.audit import services as audit
from saas.common import N_, utcnow
from saas.delivery import audience
from saas.delivery.models import (
    ChunkStatus,
    Delivery,
    DeliveryChunk,
    DeliveryKind,
    DeliveryRecipient,
    DeliveryStatus,
)
from saas.extensions import db
from saas.messaging.objects import MessageValidationError
from saas.messaging.variables import group_recipients_by_rendering
from saas.queues import get_queue
from saas.quota.counter import QuotaExceeded, Reservation, release, reserve
from saas.tenancy.models import Clinic

CHUNK_SIZE = 500
SKIP_REASONS = {
    "blocked": N_("ブロック中"),
    "no_consent": N_("配信同意なし"),
    "over_quota": N_("通数上限"),
    "cancelled": N_("キャンセル"),
    "monthly_limit": N_("月間上限（LINE）"),
}


def create_delivery(
    *,
    messages: list[dict],
    kind: str = DeliveryKind.BROADCAST,
    title: str = "",
    segment: dict | None = None,
    friend_id: int | None = None,
    allow_trim: bool = False,
    scheduled_at: datetime | None = None,
    actor=None,
    urgent_notice_id: int | None = None,
) -> Delivery:
    """A delivery row (not yet started) in the current clinic scope; flushes, does not commit."""
    delivery = Delivery(
        kind=kind,
        title=title or _title_of(messages),
        messages=messages,
        segment=segment or {},
        friend_id=friend_id,
        allow_trim=allow_trim,
        scheduled_at=scheduled_at,
        urgent_notice_id=urgent_notice_id,
        created_by_id=getattr(actor, "id", None),
        created_by_email=getattr(actor, "email", "") or "",
        skipped={},
    )
    db.session.add(delivery)
    db.session.flush()
    return delivery


def create_draft(messages: list[dict], actor=None) -> Delivery:
    """Messages from the composer kept until the audience is chosen. Commits."""
    delivery = create_delivery(messages=messages, actor=actor)
    db.session.commit()
    return delivery


def _title_of(messages: list[dict]) -> str:
    for message in messages:
        text = message.get("text") or message.get("altText")
        if text:
            return text.replace("\n", " ")[:60]
    return "メッセージ"


def submit(delivery: Delivery) -> None:
    """Schedule the delivery for its time, or start it now (planning on its queue). Commits."""
    if delivery.scheduled_at and delivery.scheduled_at > utcnow():
        delivery.status = DeliveryStatus.SCHEDULED
        db.session.commit()
        queue = get_queue(delivery.queue_name)
        when = delivery.scheduled_at.replace(tzinfo=UTC)
        from saas.delivery.jobs import start_delivery

        queue.enqueue_at(when, start_delivery, delivery.id, delivery.clinic_id, job_id=start_job_id(delivery.id))
        return
    delivery.status = DeliveryStatus.SCHEDULED
    db.session.commit()
    start(delivery.id)


def start_job_id(delivery_id: int) -> str:
    """The RQ job id of a delivery's scheduled start, so cancelling can find and remove it."""
    return f"delivery-start-{delivery_id}"


def _unschedule_start(delivery: Delivery) -> None:
    """Take the delivery's scheduled start job out of RQ (it would only find the delivery cancelled)."""
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job, JobStatus

    queue = get_queue(delivery.queue_name)
    job_id = start_job_id(delivery.id)
    queue.scheduled_job_registry.remove(job_id)
    try:
        job = Job.fetch(job_id, connection=queue.connection)
    except NoSuchJobError:
        return
    if job.get_status() in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.DEFERRED):
        with contextlib.suppress(InvalidJobOperation):  # cancelled meanwhile by another request
            job.cancel()


def _claim(delivery_id: int, source: str, target: str) -> bool:
    """Move the delivery from one status to the next; only one caller ever wins."""
    changed = db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == source)
        .values(status=target, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return changed.rowcount == 1


def start(delivery_id: int) -> bool:
    """Plan and enqueue a scheduled delivery; a second call (duplicate job, restart) does nothing."""
    if not _claim(delivery_id, DeliveryStatus.SCHEDULED, DeliveryStatus.PLANNING):
        return False
    delivery = db.session.get(Delivery, delivery_id)
    delivery.started_at = utcnow()
    counts = audience.count_audience(delivery.kind, delivery.segment, delivery.friend_id)
    friends = audience.eligible_friends(delivery.kind, delivery.segment, delivery.friend_id)
    skipped = counts.skipped
    try:
        reservation = reserve(
            delivery.clinic_id, len(friends), allow_trim=delivery.allow_trim, purpose=f"delivery:{delivery.id}"
        )
    except QuotaExceeded as refused:
        _refuse(delivery, refused, skipped)
        return False
    if reservation.trimmed:
        skipped["over_quota"] = reservation.trimmed
        friends = friends[: reservation.granted]
    delivery.reservation = reservation.as_dict()
    delivery.targeted, delivery.skipped = len(friends), skipped
    try:
        chunk_ids = _plan_chunks(delivery, friends)
    except MessageValidationError as invalid:
        _abandon(delivery, reservation, f"メッセージに問題があります: {invalid}")
        return False
    delivery.status = DeliveryStatus.SENDING
    _audit_send(delivery)
    db.session.commit()
    _enqueue_chunks(delivery, chunk_ids)
    if not chunk_ids:
        finish_if_complete(delivery.id)
    return True


def _abandon(delivery: Delivery, reservation: Reservation, reason: str) -> None:
    db.session.rollback()
    delivery = db.session.get(Delivery, delivery.id)
    delivery.status, delivery.stop_reason, delivery.finished_at = DeliveryStatus.REFUSED, reason, utcnow()
    db.session.commit()
    release(reservation, reservation.granted)


def _refuse(delivery: Delivery, refused: QuotaExceeded, skipped: dict) -> None:
    delivery.status = DeliveryStatus.REFUSED
    delivery.stop_reason = str(refused)
    delivery.skipped = {**skipped, "over_quota": refused.needed}
    delivery.finished_at = utcnow()
    audit.record(
        "delivery.refused",
        clinic_id=delivery.clinic_id,
        target_type="delivery",
        target_id=delivery.id,
        details={"needed": refused.needed, "remaining": refused.remaining, "limit": refused.limit},
        actor_email=delivery.created_by_email,
    )
    db.session.commit()


def _audit_send(delivery: Delivery) -> None:
    audit.record(
        "delivery.send",
        clinic_id=delivery.clinic_id,
        target_type="delivery",
        target_id=delivery.id,
        details={
            "kind": delivery.kind,
            "title": delivery.title,
            "recipients": delivery.targeted,
            "skipped": delivery.skipped,
            "segment": delivery.segment,
            "by": delivery.created_by_email,
        },
        actor_email=delivery.created_by_email,
    )


def _plan_chunks(delivery: Delivery, friends: list[audience.Candidate]) -> list[int]:
    """Chunks of ≤500 (multicast for shared renderings, pushes for one-of-a-kind ones)."""
    clinic = db.session.get(Clinic, delivery.clinic_id)
    groups = group_recipients_by_rendering(delivery.messages, clinic, friends)
    multicast = [g for g in groups if not g.needs_push]
    pushes = [g for g in groups if g.needs_push]
    chunks: list[tuple[DeliveryChunk, list[dict]]] = []
    for group in multicast:
        for start in range(0, len(group.friends), CHUNK_SIZE):
            members = group.friends[start : start + CHUNK_SIZE]
            chunk = _new_chunk(delivery, len(chunks), "multicast", group.messages, len(members))
            chunks.append((chunk, [_recipient_row(f, None) for f in members]))
    for start in range(0, len(pushes), CHUNK_SIZE):
        members = pushes[start : start + CHUNK_SIZE]
        chunk = _new_chunk(delivery, len(chunks), "push", [], len(members))
        chunks.append((chunk, [_recipient_row(g.friends[0], g.messages) for g in members]))
    db.session.add_all([chunk for chunk, _ in chunks])
    db.session.flush()
    rows = []
    for chunk, members in chunks:
        for row in members:
            rows.append({**row, "chunk_id": chunk.id, "delivery_id": delivery.id, "clinic_id": delivery.clinic_id})
    if rows:
        db.session.execute(sa.insert(DeliveryRecipient), rows)
    return [chunk.id for chunk, _ in chunks]


def _new_chunk(delivery: Delivery, seq: int, mode: str, messages: list[dict], size: int) -> DeliveryChunk:
    return DeliveryChunk(
        clinic_id=delivery.clinic_id,
        delivery_id=delivery.id,
        seq=seq,
        mode=mode,
        messages=messages,
        size=size,
        retry_key=str(uuid.uuid4()),  # stored with the chunk, before its first call
        status=ChunkStatus.PENDING,
    )


def _recipient_row(friend: audience.Candidate, messages: list[dict] | None) -> dict:
    return {
        "friend_id": friend.id,
        "line_user_id": friend.line_user_id,
        "messages": messages,
        "retry_key": str(uuid.uuid4()) if messages is not None else None,
        "status": ChunkStatus.PENDING,
        "error": "",
    }


def _enqueue_chunks(delivery: Delivery, chunk_ids: list[int]) -> None:
    from saas.delivery.jobs import send_chunk

    queue = get_queue(delivery.queue_name)
    jobs = [
        queue.prepare_data(send_chunk, args=(chunk_id, delivery.clinic_id), timeout=600, result_ttl=600)
        for chunk_id in chunk_ids
    ]
    for start in range(0, len(jobs), 1000):
        queue.enqueue_many(jobs[start : start + 1000])


def cancel(delivery: Delivery, actor=None) -> bool:
    """Stop a delivery: chunks not yet sent are skipped. Commits; False if already finished."""
    if delivery.status not in (DeliveryStatus.SCHEDULED, DeliveryStatus.PLANNING, DeliveryStatus.SENDING):
        return False
    delivery.status = DeliveryStatus.CANCELLED
    delivery.stop_reason = "配信がキャンセルされました"
    audit.record(
        "delivery.cancel", clinic_id=delivery.clinic_id, target_type="delivery", target_id=delivery.id, actor=actor
    )
    db.session.commit()
    _unschedule_start(delivery)
    skip_pending_chunks(delivery.id, "cancelled")
    finish_if_complete(delivery.id)
    return True


def skip_pending_chunks(delivery_id: int, reason: str) -> None:
    """Mark every chunk not yet sent as skipped with ``reason``. Commits."""
    db.session.execute(
        sa.update(DeliveryChunk)
        .where(DeliveryChunk.delivery_id == delivery_id, DeliveryChunk.status == ChunkStatus.PENDING)
        .values(status=ChunkStatus.SKIPPED, skip_reason=reason, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()


def finish_if_complete(delivery_id: int) -> bool:
    """When no chunk is left to send: final counts, status, unused quota given back (once). Commits."""
    open_chunks = db.session.scalar(
        sa.select(sa.func.count(DeliveryChunk.id)).where(
            DeliveryChunk.delivery_id == delivery_id,
            DeliveryChunk.status.in_((ChunkStatus.PENDING, ChunkStatus.SENDING)),
        )
    )
    if open_chunks:
        return False
    claimed = db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.finished_at.is_(None))
        .values(finished_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    if claimed.rowcount != 1:
        return False
    delivery = db.session.get(Delivery, delivery_id)
    db.session.refresh(delivery)
    refresh_counts(delivery)
    if delivery.status in (DeliveryStatus.SENDING, DeliveryStatus.PLANNING, DeliveryStatus.SCHEDULED):
        delivery.status = DeliveryStatus.DONE
    db.session.commit()
    if delivery.reservation:
        reservation = Reservation.from_dict(delivery.reservation)
        release(reservation, max(reservation.granted - delivery.sent, 0))
    return True


def refresh_counts(delivery: Delivery) -> None:
    """Sent, failed and skipped figures from the chunks (the snapshot's skips kept). No commit."""
    rows = db.session.execute(
        sa.select(
            DeliveryChunk.status,
            DeliveryChunk.skip_reason,
            sa.func.sum(DeliveryChunk.size),
            sa.func.sum(DeliveryChunk.sent),
            sa.func.sum(DeliveryChunk.failed),
        )
        .where(DeliveryChunk.delivery_id == delivery.id)
        .group_by(DeliveryChunk.status, DeliveryChunk.skip_reason)
    ).all()
    skipped = {k: v for k, v in (delivery.skipped or {}).items() if k in ("blocked", "no_consent", "over_quota")}
    sent = failed = 0
    for status, reason, size, sent_n, failed_n in rows:
        sent += int(sent_n or 0)
        failed += int(failed_n or 0)
        if status == ChunkStatus.SKIPPED:
            left = int(size or 0) - int(sent_n or 0) - int(failed_n or 0)
            skipped[reason or "cancelled"] = skipped.get(reason or "cancelled", 0) + left
    delivery.sent, delivery.failed, delivery.skipped = sent, failed, skipped
