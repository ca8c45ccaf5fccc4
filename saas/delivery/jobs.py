"""RQ jobs of the send pipeline, and the periodic safety nets registered in saas/cron.py.

Every job takes ids, sets its own tenant scope, commits itself and is safe to run twice:
state transitions in the database decide, never the number of times a job runs.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from saas.delivery import healing, sender, services
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


@job
def send_chunk(chunk_id: int, clinic_id: int) -> str:
    """Send one chunk of a delivery (see saas.delivery.sender)."""
    with tenant_scope(clinic_id):
        return sender.run_chunk(chunk_id)


@job
def start_delivery(delivery_id: int, clinic_id: int) -> bool:
    """Plan a delivery (or resume its planning); urgent ones are also sent here, in this one job."""
    with tenant_scope(clinic_id):
        started = services.start(delivery_id)
        if db.session.scalar(sa.select(Delivery.kind).where(Delivery.id == delivery_id)) == DeliveryKind.URGENT:
            send_pending_chunks(delivery_id)
        return started


def send_pending_chunks(delivery_id: int) -> int:
    """Send the delivery's pending chunks one after the other in this job (urgent: no second hop)."""
    chunk_ids = db.session.scalars(
        sa.select(DeliveryChunk.id)
        .where(DeliveryChunk.delivery_id == delivery_id, DeliveryChunk.status == ChunkStatus.PENDING)
        .order_by(DeliveryChunk.seq)
    ).all()
    for chunk_id in chunk_ids:
        sender.run_chunk(chunk_id)
    return len(chunk_ids)


def _platform_rows(reason: str, statement) -> list:
    with platform_scope(reason):
        return db.session.execute(statement).all()


@job
def start_due_deliveries() -> int:
    """Safety net for RQ's scheduler: start scheduled deliveries whose time has come."""
    return healing.restart_planning(due_only=True)


@job
def heal_deliveries() -> dict:
    """The sweeper (every few seconds, saas/cron.py): resume what a crash, a Redis restart or a
    database blip left behind. The database says what remains; Redis only carries pointers."""
    return healing.heal()


@job
def deliver_urgent_notice(request_id: int, clinic_id: int) -> int | None:
    """Turn a pending urgent-notice request (休診・代診) into an urgent delivery, planned and sent in this job."""
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
        delivery.status = DeliveryStatus.SCHEDULED
        db.session.commit()
        delivery_id = delivery.id
        services.start(delivery_id)
        send_pending_chunks(delivery_id)
        return delivery_id


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
