"""Booking jobs: the confirmation push (safe to run twice: sent state + stored retry key)."""

from __future__ import annotations

import logging

from saas.booking import notify
from saas.booking.models import Booking
from saas.common import utcnow
from saas.extensions import db
from saas.jobs import job
from saas.queues import URGENT, get_queue
from saas.quota.counter import QuotaExceeded
from saas.receipts.models import ReceiptSource
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope

log = logging.getLogger(__name__)


@job
def send_confirmation(clinic_id: int, booking_id: int, kind: str = "confirmation") -> bool:
    """Push the confirmation (or change notice) of a booking once."""
    with tenant_scope(clinic_id):
        clinic = db.session.get(Clinic, clinic_id)
        booking = db.session.get(Booking, booking_id)
        if booking is None or booking.confirmation_sent_at is not None:
            return False
        messages = notify.changed(clinic, booking) if kind == "change" else notify.confirmation(clinic, booking)
        try:
            notify.push_once(
                clinic, booking.line_user_id, messages, booking.confirmation_retry_key, "booking",
                source=ReceiptSource.BOOKING_NOTICE, friend_id=booking.friend_id, ref_id=booking.id,
            )  # fmt: skip
        except QuotaExceeded as exc:
            log.warning("booking %s confirmation not sent: %s", booking_id, exc)
            return False
        booking.confirmation_sent_at = utcnow()
        db.session.commit()
        return True


def enqueue_confirmation(booking: Booking, kind: str = "confirmation") -> None:
    """Queue the confirmation push on the urgent queue (retried on LINE errors)."""
    from rq import Retry

    get_queue(URGENT).enqueue(
        send_confirmation, booking.clinic_id, booking.id, kind, retry=Retry(max=3, interval=[10, 60, 300])
    )
