"""Sending reminders exactly once, whatever the number of scans or worker restarts.

A periodic scan (``scan_due``, run by RQ cron) queues what is due; each send first *claims*
its row with a conditional UPDATE (pending → sending, or a stale sending claim), then pushes
with the retry key stored on the row, then marks it sent. A worker dying after the push but
before the commit leaves a stale claim: the next scan re-claims it and repeats the push with
the same key, which LINE answers with 409 (already accepted) — nothing is delivered twice.
Bookings made far ahead are also queued with RQ's scheduler (``enqueue_at``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from saas.booking import notify
from saas.booking.models import Booking, BookingStatus, ReminderState
from saas.common import to_local, utcnow, zone_of
from saas.extensions import db
from saas.friends import consent
from saas.jobs import job
from saas.line.errors import LineError
from saas.queues import DEFAULT, get_queue
from saas.quota.counter import QuotaExceeded
from saas.receipts.models import ReceiptSource
from saas.reminders import rules
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope

log = logging.getLogger(__name__)
STALE_CLAIM = timedelta(minutes=10)


def _due_bookings(now: datetime) -> list[tuple[int, int]]:
    stale = now - STALE_CLAIM
    query = sa.select(Booking.clinic_id, Booking.id).where(
        Booking.status == BookingStatus.CONFIRMED,
        Booking.reminder_at <= now,
        sa.or_(
            Booking.reminder_state == ReminderState.PENDING,
            sa.and_(Booking.reminder_state == ReminderState.SENDING, Booking.reminder_claimed_at < stale),
        ),
    )
    return [(row.clinic_id, row.id) for row in db.session.execute(query)]


@job
def scan_due(now: datetime | None = None) -> dict:
    """Queue every reminder that is due (bookings and rules) across clinics. Safe to run often."""
    now = now or utcnow()
    with platform_scope("reminder scan"):
        due = _due_bookings(now)
        clinic_ids = list(db.session.scalars(sa.select(Clinic.id)))
    queue = get_queue(DEFAULT)
    for clinic_id, booking_id in due:
        queue.enqueue(send_booking_reminder, clinic_id, booking_id, now, job_id=f"booking-reminder-{booking_id}")
    rule_reminders = 0
    for clinic_id in clinic_ids:
        with tenant_scope(clinic_id):
            for reminder_id in rules.due_reminders(db.session.get(Clinic, clinic_id), now):
                queue.enqueue(rules.send_rule_reminder, clinic_id, reminder_id, now)
                rule_reminders += 1
    return {"bookings": len(due), "rules": rule_reminders}


def _claim(booking_id: int, now: datetime) -> bool:
    claimed = db.session.execute(
        sa.update(Booking)
        .where(
            Booking.id == booking_id,
            Booking.status == BookingStatus.CONFIRMED,
            sa.or_(
                Booking.reminder_state == ReminderState.PENDING,
                sa.and_(
                    Booking.reminder_state == ReminderState.SENDING, Booking.reminder_claimed_at < now - STALE_CLAIM
                ),
            ),
        )
        .values(reminder_state=ReminderState.SENDING, reminder_claimed_at=now),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return claimed.rowcount == 1


def _finish(booking: Booking, state: str, now: datetime) -> None:
    booking.reminder_state = state
    if state == ReminderState.SENT:
        booking.reminder_sent_at = now
    db.session.commit()


@job
def send_booking_reminder(clinic_id: int, booking_id: int, now: datetime | None = None) -> str:
    """Send one booking's day-before reminder if this worker wins the claim."""
    now = now or utcnow()
    with tenant_scope(clinic_id):
        if not _claim(booking_id, now):
            return "not-claimed"
        booking = db.session.get(Booking, booking_id)
        clinic = db.session.get(Clinic, clinic_id)
        if booking.starts_at <= _clinic_time(clinic, now):
            _finish(booking, ReminderState.SKIPPED, now)
            return "too-late"
        if not consent.reminders_allowed_for(booking.friend_id, booking.line_user_id):
            _finish(booking, ReminderState.SKIPPED, now)
            return "no-consent"
        try:
            notify.push_once(
                clinic, booking.line_user_id, notify.reminder(clinic, booking), booking.reminder_retry_key, "reminder",
                source=ReceiptSource.REMINDER, friend_id=booking.friend_id, ref_id=booking.id,
            )  # fmt: skip
        except QuotaExceeded as exc:
            log.warning("reminder for booking %s skipped: %s", booking_id, exc)
            _finish(booking, ReminderState.SKIPPED, now)
            return "over-quota"
        except LineError as exc:
            if not exc.retryable:
                _finish(booking, ReminderState.SKIPPED, now)
                return "rejected"
            _finish(booking, ReminderState.PENDING, now)  # next scan retries with the same key
            raise
        _finish(booking, ReminderState.SENT, now)
        return "sent"


def _clinic_time(clinic, now_utc: datetime) -> datetime:
    return to_local(now_utc, zone_of(clinic))


def schedule_booking_reminder(booking: Booking) -> None:
    """Ask RQ's scheduler to run the reminder at its hour (the scan covers anything it misses)."""
    if booking.reminder_at is None or booking.reminder_state != ReminderState.PENDING:
        return
    at = booking.reminder_at.replace(tzinfo=UTC)
    get_queue(DEFAULT).enqueue_at(at, send_booking_reminder, booking.clinic_id, booking.id)
