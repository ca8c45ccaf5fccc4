"""Copying LINE's statistics into our tables, run by the insight jobs inside a clinic's scope.

Per request (``getMessageEvent``): every multicast request of the last 14 days gets a row; it is
first asked ``INSIGHT_FIRST_SYNC_MINUTES`` (60) after the send, since LINE counts with a delay,
then again whenever its figures are older than a quarter of the send's age (at least an hour:
hourly on the first day, every few days near the end), and no more after 14 days. Per unit
(``getStatisticsPerUnit``): each unit of the month, over the month so far, on the same rhythm
from its last use. Each call takes from the channel's budget (saas.insights.limits); a 429
stops the clinic's run and cools the channel off, other failures retry the row later.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from saas.common import JAPAN, to_local, utcnow
from saas.delivery.models import ChunkStatus, DeliveryChunk
from saas.extensions import db
from saas.insights import limits, rollup, units
from saas.insights.models import InsightDaily, InsightDemographic, InsightRequest, InsightUnit, RequestStatus
from saas.line import insight as line_insight
from saas.line.errors import LineError, LineRateLimited, LineRequestRejected
from saas.links.services import original_url

log = logging.getLogger(__name__)
WINDOW = timedelta(days=14)
MIN_REFRESH = timedelta(hours=1)
GIVE_UP_AFTER = 3  # LINE rejected a request this many times: it has no statistics for it


class _Stop(Exception):
    """Stop this clinic's run (LINE said 429, or the budget is spent); the rest waits for the next run."""


def next_refresh(sent_at: datetime, now: datetime) -> datetime | None:
    """When figures of a send made at ``sent_at`` are worth asking again (None: final)."""
    if now - sent_at >= WINDOW:
        return None
    return min(now + max(MIN_REFRESH, (now - sent_at) / 4), sent_at + WINDOW)


def track_new_requests(now: datetime) -> int:
    """A row for each multicast request sent in the last 14 days that has none yet."""
    chunks = db.session.execute(
        sa.select(DeliveryChunk.id, DeliveryChunk.clinic_id, DeliveryChunk.delivery_id)
        .add_columns(DeliveryChunk.request_id, DeliveryChunk.sent_at)
        .outerjoin(InsightRequest, InsightRequest.chunk_id == DeliveryChunk.id)
        .where(
            DeliveryChunk.status == ChunkStatus.SENT,
            DeliveryChunk.mode == "multicast",
            DeliveryChunk.request_id.is_not(None),
            DeliveryChunk.sent_at >= now - WINDOW,
            InsightRequest.id.is_(None),
        )
    ).all()
    delay = units.first_sync_delay()
    db.session.add_all(
        InsightRequest(
            clinic_id=row.clinic_id,
            delivery_id=row.delivery_id,
            chunk_id=row.id,
            request_id=row.request_id,
            sent_at=row.sent_at,
            next_sync_at=row.sent_at + delay,
            clicks=[],
        )
        for row in chunks
    )
    db.session.commit()
    rollup.refresh({row.delivery_id for row in chunks})
    return len(chunks)


def sync_clinic(clinic) -> dict:
    """One run for a clinic: new requests tracked, due requests and units asked. Counts by outcome."""
    now = utcnow()
    counts = {"tracked": track_new_requests(now), "requests": 0, "units": 0, "stopped": False}
    try:
        _sync_due_requests(clinic, now, counts)
        _sync_due_units(clinic, now, counts)
    except _Stop:
        counts["stopped"] = True
    return counts


def _due(model, now: datetime, limit: int = 200):
    return db.session.scalars(
        sa.select(model)
        .where(model.next_sync_at.is_not(None), model.next_sync_at <= now)
        .order_by(model.next_sync_at)
        .limit(limit)
    ).all()


def _ask(clinic, endpoint: str, row, now: datetime, call, *args):
    """``call(clinic, *args)`` within the budget for one row: LINE's answer, or None when the row waits."""
    if not limits.may_call(clinic, endpoint):
        raise _Stop
    try:
        answer = call(clinic, *args)
    except LineRateLimited as error:
        seconds = limits.cool_off(clinic)
        _later(row, error, now + timedelta(seconds=seconds))
        log.info("insight %s of clinic %s: 429, cooling off %ss", endpoint, clinic.id, seconds)
        raise _Stop from error
    except LineRequestRejected as error:
        _later(row, error, now + timedelta(hours=6), give_up=row.attempts + 1 >= GIVE_UP_AFTER)
        return None
    except LineError as error:  # 5xx, no answer: LINE's side
        _later(row, error, now + min(timedelta(hours=1), timedelta(minutes=5 * 2**row.attempts)))
        raise _Stop from error
    limits.forgive(clinic)
    return answer


def _later(row, error: LineError, when: datetime, give_up: bool = False) -> None:
    if isinstance(row, InsightRequest) and when - row.sent_at > WINDOW + timedelta(days=1):
        give_up = True  # LINE keeps the figures of the last 14 days only
    row.attempts += 1
    row.last_error = f"{error.status or ''} {error.message}".strip()[:500]
    row.next_sync_at = None if give_up else when
    if give_up and isinstance(row, InsightRequest):
        row.status = RequestStatus.UNAVAILABLE
    db.session.commit()


def _store(row, figures: line_insight.Interactions, now: datetime, sent_at: datetime) -> None:
    for name in ("unique_impression", "unique_click", "unique_media_played", "unique_media_played_100"):
        setattr(row, _column(name), getattr(figures, name))
    row.impressions = figures.impressions
    if isinstance(row, InsightRequest):
        row.delivered = figures.delivered
        row.status = RequestStatus.READY
    row.clicks = [
        {"url": original_url(c.url), "clicks": c.clicks, "unique_clicks": c.unique_clicks} for c in figures.clicks
    ]  # LINE names our short links (saas.links); stored as the URLs they stand for
    row.attempts, row.last_error, row.synced_at = 0, "", now
    row.next_sync_at = next_refresh(sent_at, now)


def _column(name: str) -> str:
    return {"unique_impression": "unique_impressions", "unique_click": "unique_clicks"}.get(name, name)


def _sync_due_requests(clinic, now: datetime, counts: dict) -> None:
    touched = set()
    try:
        for row in _due(InsightRequest, now):
            figures = _ask(clinic, "getMessageEvent", row, now, line_insight.message_event, row.request_id)
            if figures is not None:
                _store(row, figures, now, row.sent_at)
                db.session.commit()
                counts["requests"] += 1
            touched.add(row.delivery_id)
    finally:
        rollup.refresh(touched)


def _month_bounds(month: str, today: date) -> tuple[str, str]:
    first = date(int(month[:4]), int(month[4:]), 1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first.strftime("%Y%m%d"), min(today, following - timedelta(days=1)).strftime("%Y%m%d")


def _sync_due_units(clinic, now: datetime, counts: dict) -> None:
    today, touched = japan_today(now), set()
    try:
        for unit in _due(InsightUnit, now):
            start, end = _month_bounds(unit.month, today)
            figures = _ask(
                clinic, "getStatisticsPerUnit", unit, now, line_insight.unit_statistics, unit.name, start, end
            )
            if figures is not None:
                _store(unit, figures, now, unit.last_used_at)
                db.session.commit()
                counts["units"] += 1
                if unit.delivery_id:
                    touched.add(unit.delivery_id)
    finally:
        rollup.refresh(touched)  # a delivery LINE counts by its own unit only (multicast, push)


def japan_today(now: datetime | None = None) -> date:
    return to_local(now or utcnow(), JAPAN).date()


# --- the account's daily figures -----------------------------------------------------------------


def sync_days(clinic, now: datetime | None = None, days_back: int = 3) -> int:
    """Yesterday's followers and deliveries (and the days before it LINE had not finished)."""
    now = now or utcnow()
    today, stored = japan_today(now), 0
    try:
        for back in range(1, days_back + 1):
            day = today - timedelta(days=back)
            row = _daily_row(day)
            if row.followers_status != "ready" and _sync_followers(clinic, row, now):
                stored += 1
            if row.deliveries_status != "ready" and _sync_deliveries(clinic, row, now):
                stored += 1
        _sync_demographics(clinic, today)
    except _Stop:
        pass
    return stored


def _daily_row(day: date) -> InsightDaily:
    row = db.session.scalar(sa.select(InsightDaily).where(InsightDaily.day == day))
    if row is None:
        row = InsightDaily(day=day, deliveries={})
        db.session.add(row)
        db.session.flush()
    return row


class _Attempt:
    """Stands in for a row in ``_ask`` when a daily figure fails (nothing to reschedule)."""

    attempts, last_error, next_sync_at = 0, "", None


def _sync_followers(clinic, row: InsightDaily, now: datetime) -> bool:
    day = row.day.strftime("%Y%m%d")
    found = _ask(clinic, "getNumberOfFollowers", _Attempt(), now, line_insight.followers, day)
    if found is None:
        return False
    row.followers_status, row.synced_at = found.status, now
    row.followers, row.targeted_reaches, row.blocks = found.followers, found.targeted_reaches, found.blocks
    db.session.commit()
    return True


def _sync_deliveries(clinic, row: InsightDaily, now: datetime) -> bool:
    day = row.day.strftime("%Y%m%d")
    found = _ask(clinic, "getNumberOfMessageDeliveries", _Attempt(), now, line_insight.message_deliveries, day)
    if found is None:
        return False
    row.deliveries_status, row.deliveries, row.synced_at = found.status, found.counts, now
    db.session.commit()
    return True


def _sync_demographics(clinic, today: date) -> None:
    if db.session.scalar(sa.select(InsightDemographic.id).where(InsightDemographic.taken_on == today)):
        return
    found = _ask(clinic, "getFriendsDemographics", _Attempt(), utcnow(), line_insight.demographics)
    if found is not None:
        db.session.add(InsightDemographic(taken_on=today, available=found.available, tiles=found.tiles))
        db.session.commit()


def clinics_with_recent_sends(now: datetime) -> list[int]:
    """Clinics with a multicast sent in the last 14 days or a unit due (platform scope)."""
    sent = sa.select(DeliveryChunk.clinic_id).where(
        DeliveryChunk.status == ChunkStatus.SENT, DeliveryChunk.sent_at >= now - WINDOW
    )
    units = sa.select(InsightUnit.clinic_id).where(InsightUnit.next_sync_at <= now)
    return sorted(set(db.session.scalars(sent.distinct())) | set(db.session.scalars(units.distinct())))
