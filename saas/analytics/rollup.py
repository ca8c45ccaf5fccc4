"""Recompute the daily roll-ups of some clinics for some Japan days from the raw rows.

One grouped query per counter covers every clinic and day asked for, so the nightly catch-up of
a thousand clinics is a dozen statements, not a thousand loops. Callers hold the platform scope
(jobs only): the statements name the clinics themselves.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from saas.analytics.models import (
    CLINIC_DAY_COUNTERS,
    ClickHour,
    ClinicDay,
    Conversion,
    DeliveryClickDay,
    SourceDay,
)
from saas.booking.models import Booking
from saas.cards.models import CardStamp
from saas.common import utcnow
from saas.coupons.models import CouponRedemption
from saas.delivery.models import Delivery, DeliveryStatus
from saas.extensions import db
from saas.forms.models import FormAnswer
from saas.friends.models import Direction, Friend, FriendStatus
from saas.links.models import LinkClick
from saas.portal.models import MessageDay

JAPAN_OFFSET = timedelta(hours=9)  # Japan keeps no daylight saving
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

Counts = dict[tuple[int, date], int]


def day_start(day: date) -> datetime:
    """The naive UTC moment a Japan day begins."""
    return datetime.combine(day, datetime.min.time()) - JAPAN_OFFSET


def japan_day(moment: datetime) -> date:
    return (moment + JAPAN_OFFSET).date()


def japan_today() -> date:
    return japan_day(utcnow())


def _local_day(column):
    if db.engine.dialect.name == "sqlite":
        return sa.func.date(column, "+540 minutes")
    return sa.cast(column + JAPAN_OFFSET, sa.Date)


def _local_hour(column):
    if db.engine.dialect.name == "sqlite":
        return sa.cast(sa.func.strftime("%H", column, "+540 minutes"), sa.Integer)
    return sa.cast(sa.extract("hour", column + JAPAN_OFFSET), sa.Integer)


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _per_clinic_day(column, clinic_ids: list[int], start: datetime, end: datetime, *criteria, model=None) -> Counts:
    clinic = (model or column.class_).clinic_id
    day = _local_day(column)
    statement = (
        sa.select(clinic, day, sa.func.count())
        .where(clinic.in_(clinic_ids), column >= start, column < end, *criteria)
        .group_by(clinic, day)
    )
    return {(c, _as_date(d)): n for c, d, n in db.session.execute(statement)}


def _friends_at_end(clinic_ids: list[int], days: list[date]) -> Counts:
    """Friends following at the end of each day: followed before it and not blocked by then."""
    counts: Counts = {}
    joined = sa.func.coalesce(Friend.followed_at, Friend.created_at)
    for day in days:
        end = day_start(day + timedelta(days=1))
        still = sa.or_(Friend.status == FriendStatus.FOLLOWING, Friend.blocked_at >= end)
        statement = (
            sa.select(Friend.clinic_id, sa.func.count())
            .where(Friend.clinic_id.in_(clinic_ids), joined < end, still)
            .group_by(Friend.clinic_id)
        )
        counts.update({(c, day): n for c, n in db.session.execute(statement)})
    return counts


def _messages_sent(clinic_ids: list[int], days: list[date]) -> Counts:
    statement = sa.select(MessageDay.clinic_id, MessageDay.day, MessageDay.total).where(
        MessageDay.clinic_id.in_(clinic_ids), MessageDay.day.in_(days), MessageDay.direction == Direction.OUT
    )
    return {(c, _as_date(d)): n for c, d, n in db.session.execute(statement)}


def _failed_sends(clinic_ids: list[int], start: datetime, end: datetime) -> Counts:
    day = _local_day(Delivery.started_at)
    statement = (
        sa.select(Delivery.clinic_id, day, sa.func.sum(Delivery.failed))
        .where(Delivery.clinic_id.in_(clinic_ids), Delivery.started_at >= start, Delivery.started_at < end)
        .group_by(Delivery.clinic_id, day)
    )
    return {(c, _as_date(d)): int(n or 0) for c, d, n in db.session.execute(statement)}


def clinic_day_counts(clinic_ids: list[int], days: list[date]) -> dict[str, Counts]:
    """Every counter of ``CLINIC_DAY_COUNTERS`` for the clinics and days."""
    start, end = day_start(min(days)), day_start(max(days) + timedelta(days=1))
    attributed = sa.or_(Conversion.clicked_delivery_id.is_not(None), Conversion.received_delivery_id.is_not(None))
    return {
        "follows": _per_clinic_day(Friend.followed_at, clinic_ids, start, end),
        "blocks": _per_clinic_day(Friend.blocked_at, clinic_ids, start, end),
        "friends_total": _friends_at_end(clinic_ids, days),
        "messages_sent": _messages_sent(clinic_ids, days),
        "deliveries": _per_clinic_day(
            Delivery.started_at, clinic_ids, start, end, Delivery.status != DeliveryStatus.DRAFT
        ),
        "bookings": _per_clinic_day(Booking.created_at, clinic_ids, start, end, model=Booking),
        "redemptions": _per_clinic_day(CouponRedemption.redeemed_at, clinic_ids, start, end),
        "form_answers": _per_clinic_day(FormAnswer.submitted_at, clinic_ids, start, end),
        "stamps": _per_clinic_day(CardStamp.stamped_at, clinic_ids, start, end),
        "conversions": _per_clinic_day(Conversion.occurred_at, clinic_ids, start, end, attributed),
        "failed_sends": _failed_sends(clinic_ids, start, end),
        "clicks": _per_clinic_day(LinkClick.clicked_at, clinic_ids, start, end),
        "clicked_conversions": _per_clinic_day(
            Conversion.occurred_at, clinic_ids, start, end, Conversion.clicked_delivery_id.is_not(None)
        ),
    }


def _upsert(model, rows: list[dict], keys: list[str]) -> None:
    if not rows:
        return
    insert = _INSERTS[db.engine.dialect.name](model)
    updated = {name: insert.excluded[name] for name in rows[0] if name not in keys}
    db.session.execute(insert.on_conflict_do_update(index_elements=keys, set_=updated), rows)


def roll_up_clinic_days(clinic_ids: list[int], days: list[date]) -> int:
    """Write the clinics' day rows for ``days`` (zeros included); returns the rows written."""
    if not clinic_ids or not days:
        return 0
    counts, now = clinic_day_counts(clinic_ids, days), utcnow()
    rows = [
        {"clinic_id": c, "day": d, **{name: counts[name].get((c, d), 0) for name in CLINIC_DAY_COUNTERS}}
        | {"computed_at": now}
        for c in clinic_ids
        for d in days
    ]
    _upsert(ClinicDay, rows, ["clinic_id", "day"])
    return len(rows)


def _source_counts(clinic_ids: list[int], start: datetime, end: datetime) -> dict[tuple[int, int, date], dict]:
    source = sa.func.coalesce(Friend.inflow_source_id, 0)
    counts: dict[tuple[int, int, date], dict] = defaultdict(lambda: {"follows": 0, "blocks": 0, "bookings": 0})
    for name, column in (("follows", Friend.followed_at), ("blocks", Friend.blocked_at)):
        day = _local_day(column)
        statement = (
            sa.select(Friend.clinic_id, source, day, sa.func.count())
            .where(Friend.clinic_id.in_(clinic_ids), column >= start, column < end)
            .group_by(Friend.clinic_id, source, day)
        )
        for c, s, d, n in db.session.execute(statement):
            counts[(c, s, _as_date(d))][name] = n
    day = _local_day(Booking.created_at)
    booked = (
        sa.select(Booking.clinic_id, source, day, sa.func.count())
        .join(Friend, Friend.id == Booking.friend_id)
        .where(Booking.clinic_id.in_(clinic_ids), Booking.created_at >= start, Booking.created_at < end)
        .group_by(Booking.clinic_id, source, day)
    )
    for c, s, d, n in db.session.execute(booked):
        counts[(c, s, _as_date(d))]["bookings"] = n
    return counts


def roll_up_source_days(clinic_ids: list[int], days: list[date]) -> int:
    """Replace the clinics' per-source rows for ``days``; returns the rows written."""
    if not clinic_ids or not days:
        return 0
    start, end = day_start(min(days)), day_start(max(days) + timedelta(days=1))
    counts = {key: value for key, value in _source_counts(clinic_ids, start, end).items() if key[2] in days}
    rows = [{"clinic_id": c, "source_id": s, "day": d, **values} for (c, s, d), values in counts.items()]
    return _replace(SourceDay, clinic_ids, days, rows, ["clinic_id", "source_id", "day"])


def _replace(model, clinic_ids: list[int], days: list[date], rows: list[dict], keys: list[str]) -> int:
    db.session.execute(sa.delete(model).where(model.clinic_id.in_(clinic_ids), model.day.in_(days)))
    _upsert(model, rows, keys)
    return len(rows)


def roll_up_delivery_click_days(clinic_ids: list[int], days: list[date]) -> int:
    """Replace the clinics' per-delivery click rows for ``days`` (index ``ix_link_click_clinic_time``)."""
    if not clinic_ids or not days:
        return 0
    start, end = day_start(min(days)), day_start(max(days) + timedelta(days=1))
    day = _local_day(LinkClick.clicked_at)
    statement = (
        sa.select(
            LinkClick.clinic_id,
            LinkClick.delivery_id,
            day,
            sa.func.count(),
            sa.func.count(sa.distinct(LinkClick.friend_id)),
        )
        .where(
            LinkClick.clinic_id.in_(clinic_ids),
            LinkClick.clicked_at >= start,
            LinkClick.clicked_at < end,
            LinkClick.delivery_id.is_not(None),
        )
        .group_by(LinkClick.clinic_id, LinkClick.delivery_id, day)
    )
    rows = [
        {"clinic_id": c, "delivery_id": d, "day": _as_date(k), "clicks": n, "friends": f}
        for c, d, k, n, f in db.session.execute(statement)
        if _as_date(k) in days
    ]
    return _replace(DeliveryClickDay, clinic_ids, days, rows, ["clinic_id", "delivery_id", "day"])


def roll_up_click_hours(clinic_ids: list[int], days: list[date]) -> int:
    """Replace the clinics' clicks per Japan hour for ``days`` (hours without clicks have no row)."""
    if not clinic_ids or not days:
        return 0
    start, end = day_start(min(days)), day_start(max(days) + timedelta(days=1))
    day, hour = _local_day(LinkClick.clicked_at), _local_hour(LinkClick.clicked_at)
    statement = (
        sa.select(LinkClick.clinic_id, day, hour, sa.func.count())
        .where(LinkClick.clinic_id.in_(clinic_ids), LinkClick.clicked_at >= start, LinkClick.clicked_at < end)
        .group_by(LinkClick.clinic_id, day, hour)
    )
    rows = [
        {"clinic_id": c, "day": _as_date(d), "hour": int(h), "clicks": n}
        for c, d, h, n in db.session.execute(statement)
        if _as_date(d) in days
    ]
    return _replace(ClickHour, clinic_ids, days, rows, ["clinic_id", "day", "hour"])


def roll_up(clinic_ids: list[int], days: list[date]) -> int:
    """Every roll-up for the clinics and days, in the caller's transaction."""
    return (
        roll_up_clinic_days(clinic_ids, days)
        + roll_up_source_days(clinic_ids, days)
        + roll_up_delivery_click_days(clinic_ids, days)
        + roll_up_click_hours(clinic_ids, days)
    )
