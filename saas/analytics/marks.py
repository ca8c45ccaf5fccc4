"""Wherever a follow, block, booking, redemption, form answer, stamp, delivery or sent message is
stored, the session notices its (clinic, Japan day); after the commit the day is marked dirty in
Redis (a click, stored outside the session by the short-link redirect, marks its day itself), and the minutely roll-up job (saas/cron.py) recomputes the marked days. A mark lost with
Redis is made good by the nightly catch-up. A new booking, redemption, form answer or stamp also
queues the job that stores its attribution.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

import redis
import sqlalchemy as sa
from flask import has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from saas.analytics.models import Conversion, ConversionKind
from saas.analytics.rollup import japan_day, japan_today
from saas.booking.models import Booking
from saas.cards.models import CardStamp
from saas.coupons.models import CouponRedemption
from saas.delivery.models import Delivery
from saas.forms.models import FormAnswer
from saas.friends.models import Direction, Friend, Message

log = logging.getLogger(__name__)
DIRTY_KEY = "analytics:dirty-days"
_DAYS, _CONVERSIONS = "analytics_dirty_days", "analytics_new_conversions"

# model -> the attributes whose values (old and new) name the days it changes
_WATCHED = {
    Friend: ("followed_at", "blocked_at", "status", "inflow_source_id"),
    Booking: ("created_at",),
    CouponRedemption: ("redeemed_at",),
    FormAnswer: ("submitted_at",),
    CardStamp: ("stamped_at",),
    Delivery: ("started_at", "status", "failed"),
    Conversion: ("occurred_at", "clicked_delivery_id", "received_delivery_id"),
}
_CONVERTING = {
    Booking: ConversionKind.BOOKING,
    CouponRedemption: ConversionKind.REDEMPTION,
    FormAnswer: ConversionKind.FORM_ANSWER,
    CardStamp: ConversionKind.STAMP,
}


def _changed_days(instance, attributes: tuple[str, ...], is_new: bool) -> set[date]:
    state = sa.inspect(instance)
    if not is_new and not any(state.attrs[name].history.has_changes() for name in attributes):
        return set()
    days = {japan_today()}
    for name in attributes:
        history = state.attrs[name].history
        for value in (*history.added, *history.unchanged, *history.deleted):
            if hasattr(value, "date") and hasattr(value, "hour"):
                days.add(japan_day(value))
    return days


def _note(session: Session, flush_context) -> None:
    days = session.info.setdefault(_DAYS, set())
    conversions = session.info.setdefault(_CONVERSIONS, set())
    for instance, is_new in [(i, True) for i in session.new] + [(i, False) for i in session.dirty]:
        attributes = _WATCHED.get(type(instance))
        if isinstance(instance, Message) and is_new and instance.direction == Direction.OUT:
            attributes = ("created_at",)
        if attributes is None or getattr(instance, "clinic_id", None) is None:
            continue
        days.update((instance.clinic_id, day) for day in _changed_days(instance, attributes, is_new))
        if is_new and type(instance) in _CONVERTING:
            conversions.add((instance.clinic_id, _CONVERTING[type(instance)], instance.id))


def note_sent(session: Session, clinic_id: int, sent_at: list) -> None:
    """Sent messages stored in bulk (no ORM objects for :func:`_note` to see) mark their days too."""
    if sent_at:
        days = {japan_today(), *(japan_day(moment) for moment in sent_at)}
        session.info.setdefault(_DAYS, set()).update((clinic_id, day) for day in days)


def _publish(session: Session) -> None:
    days, conversions = session.info.pop(_DAYS, set()), session.info.pop(_CONVERSIONS, set())
    if not (days or conversions) or not has_app_context():
        return
    try:
        _enqueue(days, conversions)
    except (redis.RedisError, OSError) as error:  # the sweep and the nightly catch-up make it good
        log.warning("analytics: %d day marks and %d conversions not queued: %s", len(days), len(conversions), error)


def _enqueue(days: set, conversions: set) -> None:
    from saas.analytics import jobs
    from saas.queues import BULK, get_queue, get_redis

    for clinic_id, kind, ref_id in sorted(conversions):
        get_queue(BULK).enqueue(jobs.attribute_conversion, clinic_id, kind, ref_id)
    if days:
        get_redis().sadd(DIRTY_KEY, *sorted(f"{clinic_id}:{day.isoformat()}" for clinic_id, day in days))


def mark_day(clinic_id: int, moment: datetime) -> None:
    """Mark the clinic's Japan day of ``moment`` dirty for a write made outside the ORM session (a
    click); a mark Redis loses is made good by the nightly catch-up, so a failure is only logged."""
    try:
        from saas.queues import get_redis

        get_redis().sadd(DIRTY_KEY, f"{clinic_id}:{japan_day(moment).isoformat()}")
    except (redis.RedisError, OSError) as error:
        log.warning("analytics: click day of clinic %d not marked: %s", clinic_id, error)


def _forget(session: Session) -> None:
    session.info.pop(_DAYS, None)
    session.info.pop(_CONVERSIONS, None)


def install(session_class) -> None:
    """Attach the hooks to the app's session class (once)."""
    if not event.contains(session_class, "after_flush", _note):
        event.listen(session_class, "after_flush", _note)
        event.listen(session_class, "after_commit", _publish)
        event.listen(session_class, "after_rollback", _forget)
