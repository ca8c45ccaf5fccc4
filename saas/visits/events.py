"""A booking staff mark 来院 is a visit too: it joins the friend's history (registered on import)."""

from __future__ import annotations

from saas.booking import hooks as booking_hooks
from saas.extensions import db
from saas.visits import services
from saas.visits.models import VisitSource


@booking_hooks.register_booking_observer
def record_kept_booking(booking, what: str) -> None:
    """After a booking is marked visited: one visit on its day (a second mark adds nothing)."""
    if what != booking_hooks.VISITED or not booking.friend_id:
        return
    if services.record(booking.friend_id, booking.clinic_id, booking.starts_at.date(), VisitSource.BOOKING):
        db.session.commit()
