"""Creating, submitting, cancelling and finishing deliveries.

submit records the delivery and enqueues its planning job (saas.delivery.planner: quota
reserved with the plan, recipients and chunks of at most 500 in set-based batches, one RQ job
per chunk). Nothing is sent before the reservation succeeded, so a refused send sends nothing.
A delivery ends 完了 only when nobody failed; else 一部失敗 or 失敗, and the sender is alerted.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

import redis
import sqlalchemy as sa

from saas.audit import services as audit
from saas.common import N_, utcnow
from saas.delivery.models import (
    ChunkStatus,
    Delivery,
    DeliveryChunk,
    DeliveryKind,
    DeliveryRecipient,
    DeliveryStatus,
)
from saas.extensions import db
from saas.queues import get_queue
from saas.quota.counter import Reservation, release

log = logging.getLogger(__name__)
SKIP_REASONS = {
    "blocked": N_("ブロック中"),
    "no_consent": N_("配信同意なし"),
    "over_quota": N_("通数上限"),
    "cancelled": N_("キャンセル"),
    "monthly_limit": N_("月間上限（LINE）"),
    "erased": N_("データ削除済み"),  # the friend's data was erased between planning and sending
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
    source: str | None = None,
    track_clicks_per_friend: bool = True,
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
        source=source,
        track_clicks_per_friend=track_clicks_per_friend,
        created_by_id=getattr(actor, "id", None),
        created_by_email=getattr(actor, "email", "") or "",
        skipped={},
    )
    db.session.add(delivery)
    db.session.flush()
    return delivery


def create_for_friends(
    friend_ids: list[int], messages: list[dict], *, title: str, consent: str = "marketing"
) -> Delivery:
    """A delivery to exactly these friends (step delivery), not yet submitted; flushes, no commit.

    The pipeline treats it like any send: quota reserved in full first (never trimmed), blocked
    and non-consenting friends skipped and counted, chunks of 500 with retry keys, rate limited.
    """
    segment = {"friend_ids": sorted(set(friend_ids)), "consent": consent}
    return create_delivery(messages=messages, kind=DeliveryKind.STEP, title=title, segment=segment)


def recipient_outcomes(delivery_id: int) -> dict[int, str]:
    """friend id → ``ChunkStatus`` of each planned recipient (friends skipped at planning are absent):
    a multicast chunk's recipients share its outcome (sent, failed, else pending), a push's are its own."""
    chunks = db.session.execute(
        sa.select(DeliveryChunk.friend_ids, DeliveryChunk.status).where(
            DeliveryChunk.delivery_id == delivery_id, DeliveryChunk.mode == "multicast"
        )
    )
    settled = (ChunkStatus.SENT, ChunkStatus.FAILED)
    outcomes = {
        friend_id: status if status in settled else ChunkStatus.PENDING.value
        for friend_ids, status in chunks
        for friend_id in friend_ids or []
    }
    rows = db.session.execute(
        sa.select(DeliveryRecipient.friend_id, DeliveryRecipient.status).where(
            DeliveryRecipient.delivery_id == delivery_id
        )
    )
    return outcomes | dict(rows.all())


def state_of(delivery_id: int) -> tuple[str, datetime] | None:
    """A delivery's status and last change, or None when it no longer exists."""
    row = db.session.execute(sa.select(Delivery.status, Delivery.updated_at).where(Delivery.id == delivery_id)).first()
    return (row.status, row.updated_at) if row else None


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


class QueueUnavailable(Exception):
    """Redis (the job queue) is unreachable: the delivery was not created."""


def submit(delivery: Delivery) -> None:
    """Record the delivery and enqueue its planning (now, or at its time). Commits.

    Planning never runs in the caller (a web request would time out on a large audience).
    When the queue is unreachable the delivery is deleted again and :class:`QueueUnavailable`
    raised, so nothing is left half-created. A broadcast or segment send of a clinic whose billing
    has marketing paused ends refused (kept, with the reason) and raises ``billing.MarketingPaused``.
    """
    if refused_for_billing(delivery, PAUSED_AT_SUBMIT):
        from saas import billing

        raise billing.MarketingPaused
    delivery.status = DeliveryStatus.SCHEDULED
    db.session.commit()
    try:
        _enqueue_planning(delivery)
    except (redis.RedisError, OSError) as error:
        db.session.rollback()
        db.session.execute(sa.delete(Delivery).where(Delivery.id == delivery.id, Delivery.planned == 0))
        db.session.commit()
        raise QueueUnavailable(str(error)) from error


# Sends billing's dunning pauses: bulk marketing when submitted, and steps too when planned (the
# step runner gives a refused delivery's claims back, so its friends wait until billing is paid).
# Urgent notices and 1:1 pushes are never paused: patients are not cut off by a billing problem.
PAUSED_AT_SUBMIT = frozenset({DeliveryKind.BROADCAST, DeliveryKind.SEGMENT})
PAUSED_AT_PLANNING = PAUSED_AT_SUBMIT | {DeliveryKind.STEP}


def refused_for_billing(delivery: Delivery, kinds: frozenset = PAUSED_AT_PLANNING) -> bool:
    """End the delivery refused (kept, audited, committed) when billing has marketing paused for its clinic."""
    from saas import billing
    from saas.tenancy.models import Clinic

    if delivery.kind not in kinds or billing.allows_marketing(db.session.get(Clinic, delivery.clinic_id)):
        return False
    delivery.status, delivery.finished_at = DeliveryStatus.REFUSED, utcnow()
    delivery.stop_reason = billing.MarketingPaused.message
    audit.record(
        "delivery.paused_for_billing",
        clinic_id=delivery.clinic_id,
        target_type="delivery",
        target_id=delivery.id,
        details={"kind": delivery.kind, "title": delivery.title},
        actor_email=delivery.created_by_email,
    )
    db.session.commit()
    return True


def release_held(delivery: Delivery) -> None:
    """Start a delivery the mis-send guard held, now that it is approved. Commits.

    Unlike :func:`submit` it never deletes the delivery when Redis is unreachable: it is recorded as
    scheduled, and the sweeper (``heal_deliveries``) starts it once the queue is back.
    """
    delivery.status = DeliveryStatus.SCHEDULED
    db.session.commit()
    try:
        _enqueue_planning(delivery)
    except (redis.RedisError, OSError) as error:
        log.warning("approved delivery %s waits for the sweeper: %s", delivery.id, error)


def _enqueue_planning(delivery: Delivery) -> None:
    from saas.delivery.jobs import start_delivery

    queue = get_queue(delivery.planning_queue_name)
    args = (delivery.id, delivery.clinic_id)
    if delivery.scheduled_at and delivery.scheduled_at > utcnow():
        when = delivery.scheduled_at.replace(tzinfo=UTC)
        queue.enqueue_at(when, start_delivery, *args, job_id=start_job_id(delivery.id))
    else:
        queue.enqueue(start_delivery, *args, job_id=plan_job_id(delivery.id))


def start_job_id(delivery_id: int) -> str:
    """The RQ job id of a delivery's scheduled start, so cancelling can find and remove it."""
    return f"delivery-start-{delivery_id}"


def plan_job_id(delivery_id: int) -> str:
    """The RQ job id of a delivery's planning (the sweeper re-enqueues it under the same id)."""
    return f"delivery-plan-{delivery_id}"


def _unschedule_start(delivery: Delivery) -> None:
    """Take the delivery's scheduled start job out of RQ (it would only find the delivery cancelled)."""
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job, JobStatus

    queue = get_queue(delivery.planning_queue_name)
    job_id = start_job_id(delivery.id)
    queue.scheduled_job_registry.remove(job_id)
    try:
        job = Job.fetch(job_id, connection=queue.connection)
    except NoSuchJobError:
        return
    if job.get_status() in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.DEFERRED):
        with contextlib.suppress(InvalidJobOperation):  # cancelled meanwhile by another request
            job.cancel()


def start(delivery_id: int) -> bool:
    """Plan a due delivery (in a job): see saas.delivery.planner. False when nothing was planned."""
    from saas.delivery import planner

    planner.plan(delivery_id)
    status = db.session.scalar(sa.select(Delivery.status).where(Delivery.id == delivery_id))
    return status not in (DeliveryStatus.REFUSED, DeliveryStatus.SCHEDULED, None)


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
        .where(
            Delivery.id == delivery_id,
            Delivery.finished_at.is_(None),
            Delivery.status.not_in((DeliveryStatus.PLANNING, DeliveryStatus.SCHEDULED)),
        )
        .values(finished_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    if claimed.rowcount != 1:
        return False
    delivery = db.session.get(Delivery, delivery_id)
    db.session.refresh(delivery)
    refresh_counts(delivery)
    if delivery.status == DeliveryStatus.SENDING:
        delivery.status = outcome(delivery)
    if delivery.failed:
        _alert_sender(delivery)
    db.session.commit()
    if delivery.reservation:
        reservation = Reservation.from_dict(delivery.reservation)
        release(reservation, max(reservation.granted - delivery.sent, 0))
    return True


def outcome(delivery: Delivery) -> str:
    """完了 only when nobody failed: 一部失敗 when some did, 失敗 when everybody did."""
    if not delivery.failed:
        return DeliveryStatus.DONE
    return DeliveryStatus.PARTLY_FAILED if delivery.sent else DeliveryStatus.FAILED


def _alert_sender(delivery: Delivery) -> None:
    """Tell the sender: an audit event and the alert on the delivery pages (until resent)."""
    log.warning("delivery %s of clinic %s ended with %s failed", delivery.id, delivery.clinic_id, delivery.failed)
    audit.record(
        "delivery.failed",
        clinic_id=delivery.clinic_id,
        target_type="delivery",
        target_id=delivery.id,
        details={"sent": delivery.sent, "failed": delivery.failed, "status": delivery.status},
        actor_email=delivery.created_by_email,
    )


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
        left = int(size or 0) - int(sent_n or 0) - int(failed_n or 0)
        if status == ChunkStatus.SKIPPED:
            skipped[reason or "cancelled"] = skipped.get(reason or "cancelled", 0) + left
        elif status == ChunkStatus.SENT and left > 0:
            skipped["erased"] = skipped.get("erased", 0) + left
    delivery.sent, delivery.failed, delivery.skipped = sent, failed, skipped
