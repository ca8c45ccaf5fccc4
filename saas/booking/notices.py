"""Notices staff send to patients from the booking page, pushed by RQ jobs outside the request.

Two kinds: the closure notice (the booking's time became a closure) and the cancellation
notice (staff cancelled on the patient's behalf). The request only queues the job, under an id
derived from the booking, so the page can show 「送信予約済み」 while it waits.

Each job is safe to run twice or concurrently: it checks the sent state first and pushes with a
retry key kept on the booking, so a retry after a LINE 5xx or a worker crash is delivered once
(LINE answers a repeated key with 409, counted as sent). Sent states:

- closure: ``Booking.closure_notified_at``, pushed with ``closure_notice_retry_key``;
- cancellation: the ``booking.cancel_notice_sent`` audit event (the booking has no column for
  it yet), pushed with a key derived from ``confirmation_retry_key`` (see
  :func:`cancellation_retry_key`).
"""

from __future__ import annotations

import enum
import logging
import uuid

import sqlalchemy as sa
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from saas.audit.models import AuditEvent
from saas.audit.services import record
from saas.booking import notify
from saas.booking.models import Booking, BookingStatus
from saas.common import utcnow
from saas.extensions import db
from saas.jobs import job
from saas.line.errors import LineError
from saas.queues import URGENT, get_queue, get_redis
from saas.quota.counter import QuotaExceeded
from saas.receipts.models import ReceiptSource
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope

log = logging.getLogger(__name__)

CLOSURE, CANCELLATION = "closure", "cancellation"
CANCEL_NOTICE_SENT = "booking.cancel_notice_sent"
RETRY_INTERVALS = [10, 60, 300, 900]  # seconds; LINE outages are usually short
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}


class NoticeState(enum.StrEnum):
    QUEUED = "queued"  # waiting for a worker, or for its next retry
    SENT = "sent"
    FAILED = "failed"  # gave up (quota, a rejected request, retries spent): staff may send again


def job_id(kind: str, booking_id: int) -> str:
    """The RQ job id of one booking's notice of one kind."""
    return f"booking-{kind}-notice-{booking_id}"


def cancellation_retry_key(booking: Booking) -> str:
    """The cancellation notice's retry key, derived from the booking's stored confirmation key.

    Not the confirmation key itself: LINE would answer it with 409 and the notice would be
    dropped. A cancelled booking's keys never change again, so the derived key is stable.
    """
    return str(uuid.uuid5(uuid.UUID(booking.confirmation_retry_key), "staff-cancellation"))


def _push(clinic: Clinic, booking: Booking, messages: list[dict], retry_key: str) -> bool:
    """Push once; a retryable LINE error is raised for RQ to retry with the same key."""
    try:
        notify.push_once(
            clinic, booking.line_user_id, messages, retry_key, "booking",
            source=ReceiptSource.BOOKING_NOTICE, friend_id=booking.friend_id, ref_id=booking.id,
        )  # fmt: skip
    except QuotaExceeded as exc:
        log.warning("booking %s notice not sent: %s", booking.id, exc)
        return False
    except LineError as exc:
        if exc.retryable:
            raise
        log.warning("booking %s notice refused by LINE: %s", booking.id, exc)
        return False
    return True


@job
def send_closure_notice(clinic_id: int, booking_id: int) -> bool:
    """Tell the patient their booking falls on a closure (once)."""
    with tenant_scope(clinic_id):
        clinic = db.session.get(Clinic, clinic_id)
        booking = db.session.get(Booking, booking_id)
        if booking is None or not booking.is_active or booking.closure_notified_at is not None:
            return False
        messages = notify.closure_notice(clinic, booking)
        if not _push(clinic, booking, messages, booking.closure_notice_retry_key):
            return False
        booking.closure_notified_at = utcnow()
        db.session.commit()
        return True


@job
def send_cancellation_notice(clinic_id: int, booking_id: int) -> bool:
    """Tell the patient staff cancelled their booking (once)."""
    with tenant_scope(clinic_id):
        clinic = db.session.get(Clinic, clinic_id)
        booking = db.session.get(Booking, booking_id)
        if booking is None or booking.status != BookingStatus.CANCELLED or _cancellations_sent(clinic_id, [booking_id]):
            return False
        if not _push(clinic, booking, notify.cancelled(clinic, booking), cancellation_retry_key(booking)):
            return False
        record(CANCEL_NOTICE_SENT, clinic_id=clinic_id, target_type="booking", target_id=booking_id, commit=True)
        return True


JOBS = {CLOSURE: send_closure_notice, CANCELLATION: send_cancellation_notice}


def _fetch_job(found_id: str) -> Job | None:
    try:
        return Job.fetch(found_id, connection=get_redis())
    except NoSuchJobError:
        return None


def enqueue(kind: str, booking: Booking) -> bool:
    """Queue the notice on the urgent queue; False when one is already waiting for this booking."""
    found_id = job_id(kind, booking.id)
    existing = _fetch_job(found_id)
    if existing is not None:
        if existing.get_status() in WAITING:
            return False
        existing.delete()  # an earlier attempt that gave up: staff asked again
    get_queue(URGENT).enqueue(
        JOBS[kind],
        booking.clinic_id,
        booking.id,
        job_id=found_id,
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        result_ttl=86400,
        failure_ttl=7 * 86400,
    )
    return True


def _cancellations_sent(clinic_id: int, booking_ids: list[int]) -> set[int]:
    if not booking_ids:
        return set()
    rows = db.session.scalars(
        sa.select(AuditEvent.target_id).where(
            AuditEvent.clinic_id == clinic_id,
            AuditEvent.action == CANCEL_NOTICE_SENT,
            AuditEvent.target_type == "booking",
            AuditEvent.target_id.in_([str(n) for n in booking_ids]),
        )
    )
    return {int(row) for row in rows}


def states(clinic_id: int, bookings: list[Booking], conflicts: list[Booking]) -> dict[tuple[str, int], str]:
    """(kind, booking id) → NoticeState for the notices the staff page shows; absent when none."""
    found: dict[tuple[str, int], str] = {}
    for booking in bookings:
        if booking.closure_notified_at is not None:
            found[(CLOSURE, booking.id)] = NoticeState.SENT
    staff_cancelled = [b.id for b in bookings if b.status == BookingStatus.CANCELLED and b.cancelled_by == "staff"]
    sent = _cancellations_sent(clinic_id, staff_cancelled)
    found.update({(CANCELLATION, n): NoticeState.SENT for n in sent})
    waiting = [(CLOSURE, b.id) for b in conflicts] + [(CANCELLATION, n) for n in staff_cancelled if n not in sent]
    jobs = Job.fetch_many([job_id(*key) for key in waiting], connection=get_redis()) if waiting else []
    for key, found_job in zip(waiting, jobs, strict=True):
        if found_job is not None:
            found[key] = NoticeState.QUEUED if found_job.get_status() in WAITING else NoticeState.FAILED
    return found
