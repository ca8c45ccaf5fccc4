"""RQ jobs of the send pipeline, and the periodic safety nets registered in saas/cron.py.

Every job takes ids, sets its own tenant scope, commits itself and is safe to run twice:
state transitions in the database decide, never the number of times a job runs.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from saas.common import utcnow
from saas.delivery import sender, services
from saas.delivery.models import ChunkStatus, Delivery, DeliveryChunk, DeliveryKind, DeliveryStatus
from saas.extensions import db
from saas.jobs import job
from saas.line import client as line
from saas.line.errors import LineError
from saas.messaging.limits import TEXT_MAX, cut_to_utf16
from saas.queues import get_queue
from saas.quota.counter import reconcile_with_line
from saas.schedule.models import UrgentNoticeRequest
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope

log = logging.getLogger(__name__)
STALLED_AFTER = timedelta(minutes=10)


@job
def send_chunk(chunk_id: int, clinic_id: int) -> str:
    """Send one chunk of a delivery (see saas.delivery.sender)."""
    with tenant_scope(clinic_id):
        return sender.run_chunk(chunk_id)


@job
def start_delivery(delivery_id: int, clinic_id: int) -> bool:
    """Plan and enqueue a scheduled delivery; only the first run of it does anything."""
    with tenant_scope(clinic_id):
        return services.start(delivery_id)


def _platform_rows(reason: str, statement) -> list:
    with platform_scope(reason):
        return db.session.execute(statement).all()


@job
def start_due_deliveries() -> int:
    """Safety net for RQ's scheduler: start scheduled deliveries whose time has come."""
    due = _platform_rows(
        "cron: due scheduled deliveries",
        sa.select(Delivery.id, Delivery.clinic_id, Delivery.kind).where(
            Delivery.status == DeliveryStatus.SCHEDULED, Delivery.scheduled_at <= utcnow()
        ),
    )
    for delivery_id, clinic_id, kind in due:
        queue = get_queue("urgent" if kind == DeliveryKind.URGENT else "bulk")
        queue.enqueue(start_delivery, delivery_id, clinic_id)
    return len(due)


@job
def resume_stalled_chunks() -> int:
    """Re-enqueue chunks whose job was lost or whose worker died mid-call (same retry key: no duplicate)."""
    cutoff = utcnow() - STALLED_AFTER
    stalled = _platform_rows(
        "cron: stalled delivery chunks",
        sa.select(DeliveryChunk.id, DeliveryChunk.clinic_id, DeliveryChunk.status)
        .join(Delivery, Delivery.id == DeliveryChunk.delivery_id)
        .where(
            Delivery.status == DeliveryStatus.SENDING,
            DeliveryChunk.status.in_((ChunkStatus.PENDING, ChunkStatus.SENDING)),
            DeliveryChunk.updated_at < cutoff,
        ),
    )
    for chunk_id, clinic_id, status in stalled:
        with tenant_scope(clinic_id):
            if status == ChunkStatus.SENDING:
                db.session.execute(
                    sa.update(DeliveryChunk)
                    .where(DeliveryChunk.id == chunk_id, DeliveryChunk.status == ChunkStatus.SENDING)
                    .values(status=ChunkStatus.PENDING, updated_at=utcnow())
                )
                db.session.commit()
            get_queue("bulk").enqueue(send_chunk, chunk_id, clinic_id)
    return len(stalled)


@job
def deliver_urgent_notice(request_id: int, clinic_id: int) -> int | None:
    """Turn a pending urgent-notice request (休診・代診) into an urgent delivery to every friend."""
    with tenant_scope(clinic_id):
        claimed = db.session.execute(
            sa.update(UrgentNoticeRequest)
            .where(UrgentNoticeRequest.id == request_id, UrgentNoticeRequest.status == "pending")
            .values(status="sending")
        )
        db.session.commit()
        if claimed.rowcount != 1:
            return None
        notice = db.session.get(UrgentNoticeRequest, request_id)
        delivery = services.create_delivery(
            messages=[{"type": "text", "text": cut_to_utf16(notice.text, TEXT_MAX)}],
            kind=DeliveryKind.URGENT,
            title="緊急のお知らせ: " + notice.text.splitlines()[0][:40] if notice.text else "緊急のお知らせ",
            urgent_notice_id=notice.id,
        )
        notice.status = "sent"
        db.session.commit()
        services.submit(delivery)
        return delivery.id


@job
def pick_up_urgent_notices() -> int:
    """Every pending urgent-notice request becomes an urgent delivery (on the urgent queue)."""
    pending = _platform_rows(
        "cron: pending urgent notices",
        sa.select(UrgentNoticeRequest.id, UrgentNoticeRequest.clinic_id).where(UrgentNoticeRequest.status == "pending"),
    )
    for request_id, clinic_id in pending:
        get_queue("urgent").enqueue(deliver_urgent_notice, request_id, clinic_id)
    return len(pending)


@job
def reconcile_quotas() -> int:
    """Align every connected clinic's message count with LINE's ``quota/consumption``."""
    clinics = _platform_rows(
        "cron: quota reconciliation", sa.select(Clinic.id).where(Clinic.line_access_token.is_not(None))
    )
    done = 0
    for (clinic_id,) in clinics:
        with tenant_scope(clinic_id):
            clinic = db.session.get(Clinic, clinic_id)
            try:
                reconcile_with_line(clinic_id, line.quota_consumption(clinic))
                done += 1
            except LineError as error:
                log.warning("quota reconciliation failed for clinic %s: %s", clinic_id, error)
    return done
