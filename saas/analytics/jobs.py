"""Analytics jobs: recompute marked days, the nightly catch-up, and a conversion's attribution."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, timedelta

import sqlalchemy as sa

from saas.analytics import attribution, marks, rollup
from saas.analytics.marks import DIRTY_KEY
from saas.extensions import db
from saas.jobs import job
from saas.queues import get_redis
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope

log = logging.getLogger(__name__)
MARKS_PER_BATCH = 500
CATCH_UP_DAYS = 3  # today, yesterday (now complete) and the day before
CLINICS_PER_BATCH = 200


def _by_day(marks: list[bytes]) -> dict[date, list[int]]:
    days: dict[date, set[int]] = defaultdict(set)
    for mark in marks:
        clinic_id, _, day = mark.decode().partition(":")
        days[date.fromisoformat(day)].add(int(clinic_id))
    return {day: sorted(ids) for day, ids in days.items()}


@job
def roll_up_dirty_days() -> int:
    """Every minute: recompute each (clinic, day) marked dirty since the last run; returns the rows written."""
    connection, written = get_redis(), 0
    while marks := connection.spop(DIRTY_KEY, MARKS_PER_BATCH):
        try:
            with platform_scope("analytics: recompute the marked clinic days"):
                for day, clinic_ids in _by_day(marks).items():
                    written += rollup.roll_up(clinic_ids, [day])
                db.session.commit()
        except Exception:
            db.session.rollback()
            connection.sadd(DIRTY_KEY, *marks)  # kept for the retry
            raise
    return written


def catch_up(days: int = CATCH_UP_DAYS, *, clinic_ids: list[int] | None = None) -> int:
    """Recompute the last ``days`` Japan days of the clinics (all of them by default)."""
    today = rollup.japan_today()
    wanted = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    written = 0
    with platform_scope("analytics: nightly catch-up of every clinic's roll-ups"):
        ids = clinic_ids or list(db.session.scalars(sa.select(Clinic.id).order_by(Clinic.id)))
        for start in range(0, len(ids), CLINICS_PER_BATCH):
            batch = ids[start : start + CLINICS_PER_BATCH]
            for first in range(0, len(wanted), 31):  # a month of days per statement at most
                written += rollup.roll_up(batch, wanted[first : first + 31])
            db.session.commit()
    return written


def attribute_missed(days: int = CATCH_UP_DAYS) -> int:
    """Attribute the recent conversions whose job was lost (Redis gone at the commit); returns how many."""
    since = rollup.day_start(rollup.japan_today() - timedelta(days=days - 1))
    with platform_scope("analytics: conversions whose attribution job was lost"):
        missed = attribution.unattributed_since(since)
    for clinic_id, kind, ref_id in missed:
        with tenant_scope(clinic_id):
            conversion = attribution.attribute(clinic_id, kind, ref_id)
            db.session.commit()
        if conversion is not None:
            marks.mark_day(clinic_id, conversion.occurred_at)
    return len(missed)


@job
def catch_up_rollups() -> int:
    """Nightly: attribute conversions whose job was lost, then recompute the last days of every clinic."""
    attribute_missed()
    written = catch_up()
    log.info("analytics: catch-up wrote %d roll-up rows", written)
    return written


@job
def attribute_conversion(clinic_id: int, kind: str, ref_id: int) -> bool:
    """Store which message a new booking, redemption, form answer or stamp is attributed to."""
    with tenant_scope(clinic_id):
        conversion = attribution.attribute(clinic_id, kind, ref_id)
        db.session.commit()
        if conversion is not None:  # its day's conversion counters follow (the row went in outside the session)
            marks.mark_day(clinic_id, conversion.occurred_at)
        return bool(conversion and (conversion.clicked_delivery_id or conversion.received_delivery_id))
