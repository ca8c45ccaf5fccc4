"""The per-delivery row (``DeliveryInsight``): LINE's figures summed over the delivery's requests
(or, when LINE keeps none per request, taken from the delivery's own aggregation unit).

A figure LINE withheld for every request stays None; when it withheld some requests' figures,
the sum of the others is kept and ``partial`` set (the page shows it as "at least").
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from saas.delivery.models import Delivery, DeliveryKind
from saas.extensions import db
from saas.insights import units
from saas.insights.models import DeliveryInsight, InsightRequest, InsightUnit, RequestStatus

FIGURES = (
    "delivered",
    "impressions",
    "unique_impressions",
    "unique_clicks",
    "unique_media_played",
    "unique_media_played_100",
)


def row_for(delivery: Delivery) -> DeliveryInsight:
    """The delivery's row, created on first use (two jobs at once: the unique key decides)."""
    statement = sa.select(DeliveryInsight).where(DeliveryInsight.delivery_id == delivery.id)
    found = db.session.scalar(statement)
    if found is not None:
        return found
    try:
        with db.session.begin_nested():
            found = DeliveryInsight(
                clinic_id=delivery.clinic_id, delivery_id=delivery.id, clicks=[], **_describe(delivery)
            )
            db.session.add(found)
    except IntegrityError:
        found = db.session.scalar(statement)
    return found


def _describe(delivery: Delivery) -> dict:
    step = units.step_of(delivery.id) if delivery.kind == DeliveryKind.STEP else None
    unit = units.describe(delivery)
    return {
        "kind": delivery.kind,
        "sent_at": delivery.started_at or delivery.created_at,
        "reached": delivery.sent,
        "scenario_id": step[0] if step else None,
        "step_id": step[1] if step else None,
        "segment_key": units.segment_key(delivery.segment) if delivery.kind == DeliveryKind.SEGMENT else None,
        "unit": unit["name"] if unit else None,
    }


def _sum(values: list[int | None]) -> tuple[int | None, bool]:
    known = [v for v in values if v is not None]
    return (sum(known) if known else None), len(known) not in (0, len(values))


def _merged_clicks(requests: list[InsightRequest]) -> list[dict]:
    by_url: dict[str, dict] = {}
    for request in requests:
        for click in request.clicks or []:
            merged = by_url.setdefault(click["url"], {"url": click["url"], "clicks": [], "unique_clicks": []})
            merged["clicks"].append(click.get("clicks"))
            merged["unique_clicks"].append(click.get("unique_clicks"))
    return [
        {"url": url, "clicks": _sum(m["clicks"])[0], "unique_clicks": _sum(m["unique_clicks"])[0]}
        for url, m in by_url.items()
    ]


def _own_units(delivery_id: int) -> list[InsightUnit]:
    """The delivery's own aggregation unit (dlv_<id>), per month synced: LINE has per-request
    figures for broadcast and narrowcast only, so a multicast or push is counted by its unit."""
    statement = sa.select(InsightUnit).where(
        InsightUnit.delivery_id == delivery_id, InsightUnit.kind == "delivery", InsightUnit.synced_at.is_not(None)
    )
    return list(db.session.scalars(statement))


def refresh(delivery_ids: Iterable[int]) -> None:
    """Recompute these deliveries' rows from their requests (current tenant scope). Commits."""
    for delivery_id in sorted(set(delivery_ids)):
        delivery = db.session.get(Delivery, delivery_id)
        if delivery is None:
            continue
        row = row_for(delivery)
        requests = db.session.scalars(sa.select(InsightRequest).where(InsightRequest.delivery_id == delivery_id)).all()
        ready = [r for r in requests if r.status == RequestStatus.READY] or _own_units(delivery_id)
        row.reached = delivery.sent
        row.requests_total, row.requests_synced = len(requests), len(ready)  # ready: requests, or else units
        partial = False
        for name in FIGURES:
            total, some_withheld = _sum([getattr(r, name) for r in ready])
            setattr(row, name, total)
            partial = partial or (some_withheld and name in ("unique_impressions", "unique_clicks"))
        row.partial = partial
        row.clicks = _merged_clicks(ready)
        row.synced_at = max((r.synced_at for r in ready if r.synced_at), default=None)
    db.session.commit()
